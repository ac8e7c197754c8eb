// TraceReader: work in progress (see the issues).
