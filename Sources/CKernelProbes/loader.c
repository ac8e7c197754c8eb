#include "kernel_probes.h"
