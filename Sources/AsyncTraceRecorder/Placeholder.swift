// AsyncTraceRecorder: work in progress (see the issues).
