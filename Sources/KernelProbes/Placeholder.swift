// KernelProbes: work in progress (see the issues).
