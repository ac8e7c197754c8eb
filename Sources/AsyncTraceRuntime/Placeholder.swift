// AsyncTraceRuntime: work in progress (see the issues).
