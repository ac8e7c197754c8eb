// libuv loop phases by uprobes (record --node-loop-phases): the phase functions of a process's
// libuv (node's binary links it statically and keeps its symbol table) get uprobes, filtered to
// that process, that run bpf/loop_probes.bpf.h's on_loop_phase with the phase as attach cookie.
#include "kernel_probes.h"
#include "loop_phase.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

// TraceFormat's TraceLoopPhase values.
enum { PHASE_TIMERS = 0, PHASE_PENDING = 1, PHASE_IDLE = 2, PHASE_PREPARE = 3, PHASE_POLL = 4, PHASE_CHECK = 5, PHASE_CLOSE = 6 };

// libuv >= 1.45 runs, per iteration: timers, pending, idle, prepare, poll (I/O callbacks, then
// pending again), check, closing handles; uv_run calls the timers first, so an iteration begins
// there. uv__run_pending and uv__run_closing_handles are static and inlined (no symbol): the
// returns of uv__run_timers and uv__run_check begin them instead.
static const struct loop_probe {
    const char *symbol;
    int retprobe;
    uint32_t phase;
} loop_probes[] = {
    {"uv__run_timers", 0, PHASE_TIMERS | KP_LOOP_STARTS_ITERATION},
    {"uv__run_timers", 1, PHASE_PENDING},
    {"uv__run_idle", 0, PHASE_IDLE},
    {"uv__run_prepare", 0, PHASE_PREPARE},
    {"uv__io_poll", 0, PHASE_POLL},
    {"uv__run_check", 0, PHASE_CHECK},
    {"uv__run_check", 1, PHASE_CLOSE},
};
#define LOOP_PROBE_COUNT (sizeof(loop_probes) / sizeof(loop_probes[0]))
#define LOOP_MAX_LINKS 4096

struct kp_loop_probes {
    struct bpf_program *program;
    struct bpf_link **links;
    size_t count;
};

struct kp_loop_probes *kp_loop_probes_new(struct kp_probes *probes) {
    struct bpf_program *program = kp_probes_loop_program(probes);
    if (!program) {
        errno = ENOTSUP;
        return NULL;
    }
    struct kp_loop_probes *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->program = program;
    return l;
}

// File offsets of the symbols `names` in an ELF file's symbol table (0: not found).
static int find_offsets(const char *path, const char *const *names, size_t n, size_t *offsets) {
    memset(offsets, 0, n * sizeof(*offsets));
    if (elf_version(EV_CURRENT) == EV_NONE)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    int found = 0;
    if (!elf || elf_kind(elf) != ELF_K_ELF) {
        if (elf)
            elf_end(elf);
        close(fd);
        return -ENOEXEC;
    }
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) || sh.sh_entsize == 0)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        if (!data)
            continue;
        size_t count = sh.sh_size / sh.sh_entsize;
        for (size_t i = 0; i < count; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0)
                continue;
            const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (!name || name[0] != 'u' || name[1] != 'v')
                continue;
            for (size_t k = 0; k < n; k++) {
                if (offsets[k] || strcmp(name, names[k]) != 0)
                    continue;
                // The file offset: the address's place in the section that holds it.
                Elf_Scn *holder = elf_getscn(elf, sym.st_shndx);
                GElf_Shdr hs;
                if (holder && gelf_getshdr(holder, &hs) && sym.st_value >= hs.sh_addr) {
                    offsets[k] = sym.st_value - hs.sh_addr + hs.sh_offset;
                    found++;
                }
            }
        }
    }
    elf_end(elf);
    close(fd);
    return found;
}

int kp_loop_probes_attach(struct kp_loop_probes *l, uint32_t pid, const char *binary, char *why, size_t why_len) {
    if (why && why_len)
        why[0] = 0;
    if (!l || pid == 0)
        return -EINVAL;
    if (l->count + LOOP_PROBE_COUNT > LOOP_MAX_LINKS) {
        if (why)
            snprintf(why, why_len, "too many processes with loop probes (%d probes at most)", LOOP_MAX_LINKS);
        return -E2BIG;
    }
    char proc_exe[64];
    snprintf(proc_exe, sizeof(proc_exe), "/proc/%u/exe", pid);
    const char *exe = binary ? binary : proc_exe;
    const char *names[LOOP_PROBE_COUNT];
    size_t offsets[LOOP_PROBE_COUNT];
    for (size_t i = 0; i < LOOP_PROBE_COUNT; i++)
        names[i] = loop_probes[i].symbol;
    int found = find_offsets(exe, names, LOOP_PROBE_COUNT, offsets);
    if (found < 0) {
        if (why)
            snprintf(why, why_len, "cannot read the symbols of %s: %s", exe, strerror(-found));
        return found;
    }
    for (size_t i = 0; i < LOOP_PROBE_COUNT; i++) {
        if (offsets[i] == 0) {
            if (why)
                snprintf(why, why_len, "the program has no symbol %s (not node, a stripped node, or another libuv)",
                         loop_probes[i].symbol);
            return -ENOENT;
        }
    }
    if (!l->links) {
        l->links = calloc(LOOP_MAX_LINKS, sizeof(*l->links));
        if (!l->links)
            return -ENOMEM;
    }
    size_t first = l->count;
    for (size_t i = 0; i < LOOP_PROBE_COUNT; i++) {
        LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = loop_probes[i].phase, .retprobe = loop_probes[i].retprobe != 0);
        struct bpf_link *link = bpf_program__attach_uprobe_opts(l->program, (pid_t)pid, exe, offsets[i], &opts);
        if (!link) {
            int err = errno ? errno : EINVAL;
            while (l->count > first)
                bpf_link__destroy(l->links[--l->count]);
            if (why)
                snprintf(why, why_len, "cannot attach a uprobe to %s: %s", loop_probes[i].symbol, strerror(err));
            return -err;
        }
        l->links[l->count++] = link;
    }
    return (int)LOOP_PROBE_COUNT;
}

void kp_loop_probes_free(struct kp_loop_probes *l) {
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        bpf_link__destroy(l->links[i]);
    free(l->links);
    free(l);
}
