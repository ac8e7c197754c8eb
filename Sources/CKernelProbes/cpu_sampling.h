// Internal to CKernelProbes: the per-CPU perf events that drive on_cpu_sample.
#ifndef KP_CPU_SAMPLING_H
#define KP_CPU_SAMPLING_H
#include <stdint.h>

struct bpf_program;
struct kp_sampling;

// Opens a software cpu-clock event at `hz` on every online CPU and attaches `program` to each.
// NULL on failure with errno set (no CPU could be sampled).
struct kp_sampling *kp_sampling_start(struct bpf_program *program, uint32_t hz);
// Stops the events and frees them (NULL is fine).
void kp_sampling_stop(struct kp_sampling *sampling);
// CPUs sampled.
uint32_t kp_sampling_cpus(const struct kp_sampling *sampling);

#endif
