// The one place the probes take a user stack (CPU samples, wait stacks): included by
// syscall_probes.bpf.c before its programs, so each kind of record shares how stacks are walked.
#include "cpu_sample.h"

#define KP_SAMPLE_STACK_BYTES (KP_SAMPLE_MAX_FRAMES * 8)

// The current thread's user stack into `frames` (KP_SAMPLE_MAX_FRAMES slots), innermost first, by
// frame pointers: the kernel walks %rbp from the user registers saved at kernel entry, so this works
// from a perf event, a syscall tracepoint or a switch-out alike. Returns the bytes written, a
// whole number of frames (0: none).
static __always_inline __u32 capture_user_stack(void *ctx, __u64 *frames) {
    long bytes = bpf_get_stack(ctx, frames, KP_SAMPLE_STACK_BYTES, BPF_F_USER_STACK);
    if (bytes < 0)
        return 0;
    return (__u32)bytes & 0x3f8; // < KP_SAMPLE_STACK_BYTES
}

// Bytes of user stack copied above %rsp for unwinding by CFI in user space (record --stack-copy;
// a multiple of 8, at most KP_STACK_COPY_MAX; 0: none).
const volatile __u32 stack_copy_bytes = 0;

// A long wait's copy: the most the probes take, whenever copies are on. Waits are rare (at least the
// stack threshold each) and their code is often deep (a Python worker: ~620 bytes of C stack per
// Python call); a sample's copy stays at stack_copy_bytes.
static __always_inline __u32 wait_copy_bytes(void) { return stack_copy_bytes ? KP_STACK_COPY_MAX : 0; }

// The current thread's user registers (saved at kernel entry, whatever the probe interrupted) and
// the top `want` bytes of its user stack into `buf` (KP_STACK_COPY_BUFFER bytes), as
// `perf --call-graph dwarf` does, for code without frame pointers. Page by page, so a stack that
// ends sooner (the main thread's, near its top) still gives what is there. Returns the bytes copied.
static __always_inline __u32 copy_user_stack(struct task_struct *task, struct kp_user_regs *out, __u8 *buf, __u32 want) {
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
    if (!regs)
        return 0;
    __u64 sp = regs->sp;
    out->ip = regs->ip;
    out->sp = sp;
    out->bp = regs->bp;
    if (want > KP_STACK_COPY_MAX)
        want = KP_STACK_COPY_MAX;
    __u32 done = 0;
    __u32 chunk = 4096 - (__u32)(sp & 4095);
    for (int i = 0; i < KP_STACK_COPY_MAX / 4096 + 1; i++) {
        if (done >= want)
            break;
        if (chunk > want - done)
            chunk = want - done;
        // The masks restate the bounds for the verifier (done < KP_STACK_COPY_MAX, chunk <= 4096).
        if (bpf_probe_read_user(buf + (done & (KP_STACK_COPY_MAX - 1)), chunk & 0x1fff, (void *)(sp + done)) != 0)
            break;
        done += chunk;
        chunk = 4096;
    }
    return done;
}

// The first KP_STACK_TOP_WORDS words at the current thread's user stack pointer (zeros where
// unreadable): the return address of a leaf without a frame pointer is among them.
static __always_inline void capture_stack_top(__u64 *words) {
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    if (!regs || bpf_probe_read_user(words, KP_STACK_TOP_WORDS * 8, (const void *)regs->sp) != 0)
        __builtin_memset(words, 0, KP_STACK_TOP_WORDS * 8);
}
