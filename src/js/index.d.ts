import type { Covisit, CovisitConfig } from './covisit_wasm.js';
export type {
  CovisitConfig, CovisitState, CovisitEvents, CovisitAgent, CovisitConnection, CovisitCommunication,
  CovisitSegment, VisitorIdentity, ExpectDisconnectOptions, SessionStatus, DisconnectType, TrackAttributes,
} from './covisit_wasm.js';
export { Covisit, version } from './covisit_wasm.js';
/** Load the wasm (once). Called by `start`; call it early to warm up. `wasmUrl` defaults to the `.wasm` next to the module. */
export function load(wasmUrl?: string | URL): Promise<void>;
/** Connect to the covisit server and identify the visitor: resolves with the SDK object. */
export function start(config: CovisitConfig): Promise<Covisit>;
