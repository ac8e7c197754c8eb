// AsyncHooks and TraceFormat both name a LoopPhase (the API's and the file's, same codes);
// this file sees only the hooks' one.
import AsyncHooks

typealias HookLoopPhase = LoopPhase
