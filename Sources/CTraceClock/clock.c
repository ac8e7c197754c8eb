// Intentionally empty: the clock helpers are inline functions in include/trace_clock.h.
#include "trace_clock.h"
