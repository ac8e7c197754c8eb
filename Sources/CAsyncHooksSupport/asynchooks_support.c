#include "asynchooks_support.h"

// Read on every emission by every thread, written almost never: a cache line of their own, so no
// counter another thread writes can share it (false sharing).
__attribute__((aligned(64))) long asynchooks_active_count_v = 0;
__attribute__((aligned(64))) void *asynchooks_fast_path_v = 0;
__attribute__((aligned(64))) static char asynchooks_padding_after[64] __attribute__((used));
__thread void *asynchooks_state_tls = 0;
