// The C side of the runtime: mostly header-only wrappers; defines the one thread-local it needs.
#include "runtime_system.h"

__thread void *rt_current_loop_tls = 0;
