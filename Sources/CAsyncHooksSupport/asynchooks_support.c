#include "asynchooks_support.h"

long asynchooks_active_count_v = 0;
void *asynchooks_fast_path_v = 0;
__thread void *asynchooks_state_tls = 0;
