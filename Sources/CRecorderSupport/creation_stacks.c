// Creation stacks: return addresses by the frame-pointer chain, and the loaded objects' code
// regions to name them by (in memory: no file is read on the recording side).
#define _GNU_SOURCE
#include "recorder_support.h"
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_stack_end;

uintptr_t trace_thread_stack_top(void) {
    // The main thread: glibc's pthread_getattr_np would read /proc/self/maps (I/O inside the traced
    // program's callbacks); its frames all lie below the stack pointer the process started with.
    if (getpid() == gettid()) return __libc_stack_end ? ((uintptr_t)__libc_stack_end + 4095) & ~(uintptr_t)4095 : 0;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
    void *addr = NULL;
    size_t size = 0;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (rc != 0 || addr == NULL) return 0;
    return (uintptr_t)addr + size;
}

// noinline: its own frame is where the walk starts (__builtin_frame_address makes clang keep one).
__attribute__((noinline))
int trace_capture_return_addresses(uint64_t *out, int max, int skip, uintptr_t stack_top, uint64_t *hash) {
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t low = fp;
    uint64_t h = 0xcbf29ce484222325ull;
    int n = 0;
    if (stack_top == 0) {
        *hash = 0;
        return 0;
    }
    while (n < max) {
        if (fp < low || fp > stack_top - 16 || (fp & 7) != 0) break;
        uintptr_t next = ((const uintptr_t *)fp)[0];
        uintptr_t ret = ((const uintptr_t *)fp)[1];
        if (ret < 4096) break;
        if (skip > 0) {
            skip--;
        } else {
            out[n++] = ret;
            h = (h ^ ret) * 0x100000001b3ull;
            h ^= h >> 29;
        }
        next &= ~(1ull << 60);  // a Swift async frame's flag (swift_async_extendedFramePointerFlags)
        if (next <= fp) break;
        fp = next;
    }
    *hash = n == 0 ? 0 : (h | 1);
    return n;
}

struct visit_context {
    int (*visit)(const struct trace_code_region *, void *);
    void *context;
    int stopped;
};

static void build_id_of(struct dl_phdr_info *info, struct trace_code_region *r) {
    r->build_id_length = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const uint8_t *name = p + sizeof(ElfW(Nhdr));
            const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
            const uint8_t *next = desc + ((nh->n_descsz + 3) & ~3u);
            if (next > end || next <= p) break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                uint32_t len = nh->n_descsz > 64 ? 64 : nh->n_descsz;
                memcpy(r->build_id, desc, len);
                r->build_id_length = len;
                return;
            }
            p = next;
        }
    }
}

static int visit_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct visit_context *c = data;
    const char *name = info->dlpi_name;
    int is_main = name == NULL || name[0] == 0;
    // The vDSO has no file to name it by (and a name without a slash).
    if (!is_main && strchr(name, '/') == NULL) return 0;
    struct trace_code_region r;
    int have_build_id = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X) == 0) continue;
        if (!have_build_id) {
            build_id_of(info, &r);
            have_build_id = 1;
        }
        uint64_t page = 4096;
        uint64_t start = info->dlpi_addr + ph->p_vaddr;
        uint64_t aligned = start & ~(page - 1);
        r.start = aligned;
        r.end = (start + ph->p_memsz + page - 1) & ~(page - 1);
        r.file_offset = ph->p_offset - (start - aligned);
        r.path = is_main ? NULL : name;
        if (c->visit(&r, c->context) != 0) return c->stopped = 1;
    }
    return 0;
}

void trace_code_regions(int (*visit)(const struct trace_code_region *, void *), void *context) {
    struct visit_context c = {visit, context, 0};
    dl_iterate_phdr(visit_object, &c);
}
