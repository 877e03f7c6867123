// GENERATED from src/core/protocol.rs and the types it carries (src/core/wire_ts.rs):
// do not edit. Refresh with `UPDATE_WIRE_TS=1 cargo test -p covisit --lib wire_ts`.
// The wire protocol (docs/PROTOCOL.md) as TypeScript, for JSDoc in the console and the
// SDK's JS: `/** @typedef {import('./wire').ServerToAgent} ServerToAgent */`.

/** One co-browsing record (docs/MIRROR.md): a one-letter kind, then its fields. */
export type MirrorRecord = [string, ...unknown[]];

/**
 * Visitor (SDK) → server.
 */
export type VisitorMessage = { "type": "hello", protocol_version: number, api_key: string, 
/**
 * The visitor's stable id from a previous visit, if any.
 */
short_id: string | null, 
/**
 * The secret the server gave this visitor with its first welcome: without it
 * (or with a wrong one) `short_id` is not this visitor's, and a new one is made.
 */
visitor_secret: string | null, connection: ConnectionHello, config: Record<string, unknown> | null, } | { "type": "heartbeat" } | { "type": "focus", hasFocus: boolean, } | { "type": "url", currentUrl: string, } | { "type": "expect_disconnect", returnTimeSeconds: number | null, message: string | null, title: string | null, } | { "type": "update_visitor", identity: Record<string, unknown>, } | { "type": "authorize" } | { "type": "deny" } | { "type": "end" } | { "type": "control_grant" } | { "type": "control_deny" } | { "type": "control_revoke" } | { "type": "request_agent" } | { "type": "cancel_request_agent" } | { "type": "rate", session_id: string, rating: number, feedback: string | null, } | { "type": "track", sent_at: number, events: Array<TrackEvent>, } | { "type": "mirror", data: MirrorData, } | { "type": "console", entries: Array<ConsoleEntry>, } | { "type": "remote_applied", id: number, ok: boolean, reason: RemoteRefusal | null, } | { "type": "call_link", token: string, } | { "type": "call", call: CallFromVisitor, };

/**
 * What a tab reports about itself in its hello (camelCase, as the seed Connection).
 */
export type ConnectionHello = { 
/**
 * Set when the tab reconnects (reload, network blip); new tabs send none.
 */
uniqueConnectionId: string | null, currentUrl: string | null, screenWidth: number, screenHeight: number, audioSupported: boolean, hasFocus: boolean, userAgent: string | null, 
/**
 * The live-chat widget the SDK found on the page (one of [`INTEGRATIONS`]); the
 * Visitor's `integration`.
 */
integration: string | null, 
/**
 * The capabilities co-browsing needs that this browser lacks (names from
 * [`CAPABILITIES`]); any makes the Visitor `is_supported: false`.
 */
missing: Array<string>, };

/**
 * The body of `POST /api/v1/journey/beacon` (`navigator.sendBeacon` on `pagehide`):
 * a `track` batch that carries its own identification, since no socket does.
 */
export type TrackBeacon = { 
/**
 * The account's public key.
 */
api_key: string, 
/**
 * The visitor's stable id.
 */
short_id: string, 
/**
 * The tab's connection, when it had one.
 */
uniqueConnectionId: string | null, 
/**
 * The visitor's secret: a beacon without it (or with a wrong one) stores nothing.
 */
visitor_secret: string | null, sent_at: number, events: Array<TrackEvent>, };

/**
 * One tracked event. Tagged by `kind`: `page_view` or `custom`.
 */
export type TrackEvent = { "kind": "page_view" } & PageFacts | { "kind": "custom", at: number, eventName: string, attributes: Record<string, unknown>, };

/**
 * What the page knows about itself when a page is viewed (page load or SPA
 * navigation). The facade reads these from the DOM; the server derives the rest
 * (URL parts, referrer kind, search terms, campaign, browser and device families).
 */
export type PageFacts = { 
/**
 * When it happened, in the page's clock (the client sets it from `now`).
 */
at: number, 
/**
 * `location.href`.
 */
url: string, 
/**
 * `document.title`.
 */
title?: string | null, 
/**
 * `document.referrer` on a page load; the previous URL on an SPA navigation.
 */
referrer?: string | null, 
/**
 * `navigator.language` (the browser's language).
 */
lang?: string | null, 
/**
 * `document.documentElement.lang` (the page's language).
 */
pageLang?: string | null, 
/**
 * `<meta name="keywords">`.
 */
keywords?: string | null, viewWidth?: number | null, viewHeight?: number | null, screenWidth?: number | null, screenHeight?: number | null, 
/**
 * User-Agent Client Hints `navigator.userAgentData.platform`, where present.
 */
platform?: string | null, 
/**
 * User-Agent Client Hints `navigator.userAgentData.mobile`, where present.
 */
mobile?: boolean | null, 
/**
 * `navigator.pdfViewerEnabled`, where present.
 */
pdf?: boolean | null, 
/**
 * Whether `RTCPeerConnection` exists.
 */
webrtc?: boolean | null, };

/**
 * Server → visitor (SDK). `Deserialize` is written by hand below: it is the one
 * decoder in the wasm bundle, and the derived one for a `type`-tagged enum costs ~40 KB.
 */
export type ServerToVisitor = { "type": "welcome", protocol_version: number, short_id: string, uniqueConnectionId: string, lookup_code: string | null, 
/**
 * Only in a new visitor's welcome (or the first since secrets existed): the
 * secret the SDK keeps next to `short_id` and sends in every hello and beacon.
 */
visitor_secret: string | null, } | { "type": "session_request", session_id: string, agent: Agent, 
/**
 * The account records this session (issue 18): the prompt says so.
 */
recorded: boolean, } | { "type": "session_start", session_id: string, } | { "type": "session_continue", session_id: string, } | { "type": "session_end", session_id: string, disconnectType: DisconnectType, } | { "type": "control_request", agent: Agent, } | { "type": "control_start", agent_id: string, } | { "type": "control_end", agent_id: string, reason: ControlEndReason, } | { "type": "prompt_withdrawn", prompt: PromptKind, } | { "type": "state", state: VisitorState, } | { "type": "heartbeat_ack" } | { "type": "error" } & ErrorFrame | { "type": "remote_action", id: number, agent_id: string, action: RemoteAction, } | { "type": "mirror_resync" } | { "type": "asset_request", id: number, url: string, } | { "type": "draw", agent_id: string, name: string, color: number, ink: Ink, } | { "type": "call", call: CallToVisitor, };

/**
 * The embedded state the SDK exposes as `state()`: the seed's objects.
 */
export type VisitorState = { status: SessionStatus, 
/**
 * The tab's seed Connection object (camelCase, every field).
 */
connection: Connection | null, 
/**
 * The visitor's seed Cobrowsesession (camelCase, every field that applies).
 */
communication: Cobrowsesession | null, };

/**
 * Agent console → server.
 */
export type AgentMessage = { "type": "hello", protocol_version: number, secret_key: string | null, name: string | null, external_id: string | null, } | { "type": "heartbeat" } | { "type": "request_session", short_id: string, found_by: FoundBy, } | { "type": "join_session", session_id: string, } | { "type": "end_session", session_id: string, } | { "type": "leave_session", session_id: string, } | { "type": "note", session_id: string, text: string, } | { "type": "request_control", session_id: string, } | { "type": "release_control", session_id: string, } | { "type": "remote_action", session_id: string, tab: string | null, action: RemoteAction, } | { "type": "draw", session_id: string, tab: string, ink: Ink, } | { "type": "set_active_connection", session_id: string, uniqueConnectionId: string | null, } | { "type": "mirror_resync", session_id: string, } | { "type": "rate_session", session_id: string, rating: number, feedback: string | null, } | { "type": "search", q: string, } | { "type": "watch", short_id: string, } | { "type": "call", session_id: string, call: CallFromAgent, };

/**
 * How the agent found the visitor (decides the seed Session `source`).
 */
export type FoundBy = "lookup_code" | "search";

/**
 * Server → agent console.
 */
export type ServerToAgent = { "type": "welcome", protocol_version: number, agent: Agent, } | { "type": "visitors", visitors: Array<Visitor>, more: boolean, } | { "type": "visitor_update", visitor: Visitor, } | { "type": "visitor_updates", visitors: Array<Visitor>, } | { "type": "session_update", session: Session, status: SessionStatus, controlling_agent_id: string | null, communications: Array<Cobrowsesession>, 
/**
 * Remote control in this session: whether a request is pending, granted, or
 * neither, and why it last ended (e.g. the visitor declined).
 */
control: SessionControl, 
/**
 * What the visitor's page tells agents (its `agentPrompt` config), if anything.
 */
agent_prompt?: string | null, 
/**
 * The visitor's open tabs (seed Connection objects), while the session is live.
 */
connections: Array<Connection>, 
/**
 * The tab each agent chose to watch (`set_active_connection`): agent id →
 * `uniqueConnectionId`. An agent not named follows the tab the visitor is in.
 */
watching: { [key in string]: string }, 
/**
 * The session's call and share (issue 17); boxed: the frame is large enough.
 */
call: SessionCall, } | { "type": "heartbeat_ack" } | { "type": "error" } & ErrorFrame | { "type": "mirror", session_id: string, tab: string, data: MirrorData, } | { "type": "search_result", q: string, visitors: Array<Visitor>, } | { "type": "remote_result", session_id: string, id: number, kind: RemoteKind, ok: boolean, reason: RemoteRefusal | null, } | { "type": "draw", session_id: string, tab: string, agent_id: string, name: string, color: number, ink: Ink, } | { "type": "call", session_id: string, call: CallToAgent, } | { "type": "console", session_id: string, tab: string, entries: Array<ConsoleEntry>, };

/**
 * `session_update.control`: `agent_id` is the agent asking or controlling (with
 * `none`, the agent whose request or control last ended, if any); `reason` is why
 * control last ended in this session (`denied` when the visitor declined), or null.
 */
export type SessionControl = { state: ControlPhase, agent_id: string | null, reason: ControlEndReason | null, 
/**
 * Co-browsing: the tab (`uniqueConnectionId`, the `tab` of `mirror` frames) that
 * is controlled while `state` is `granted`; absent otherwise.
 */
tab?: string | null, };

/**
 * Where remote control of a session stands (`session_update.control`).
 */
export type ControlPhase = "none" | "requested" | "granted";

/**
 * An error answered on a socket; the socket and the session survive it. `code` is
 * text, not an [`ErrorCode`], so that a newer peer's code still decodes; what this side
 * sends comes from the registry through [`ErrorFrame::new`].
 */
export type ErrorFrame = { code: string, message: string, };

/**
 * The records of a `mirror` frame (docs/MIRROR.md), kept as the JSON text they came
 * in: the server checks their shape ([`MirrorData::check`]) and relays the text
 * without building a tree of it; the console re-sanitises everything it renders.
 */
export type MirrorData = MirrorRecord[];

/**
 * One line of the visitor page's console as the agent sees it (`allowRemoteConsole`).
 * Read-only: nothing is ever evaluated on the page. `network` lines carry `method`,
 * `url` (without query, fragment or credentials) and `status` (0: no answer).
 */
export type ConsoleEntry = { kind: ConsoleKind, 
/**
 * The page's clock (ms since the epoch) when it happened.
 */
at: number, text: string, method: string | null, url: string | null, status: number | null, };

/**
 * The remote console's kinds: the page's console calls, its uncaught errors and
 * unhandled rejections, and its failed network requests.
 */
export type ConsoleKind = "log" | "info" | "warn" | "error" | "exception" | "rejection" | "network";

/**
 * Co-browsing: what an agent in control asks the visitor's page to do. `node` is a
 * mirror node id (docs/MIRROR.md); `x`/`y` of a click are CSS pixels inside the node's
 * box, of a scroll the node's (0: the page's) scroll position, of a pointer the
 * viewport position.
 */
export type RemoteAction = { "kind": "click", node: number, x: number, y: number, } | { "kind": "scroll", node: number, x: number, y: number, } | { "kind": "type", node: number, value: string, } | { "kind": "redirect", url: string, } | { "kind": "pointer", x: number, y: number, };

/**
 * The kinds of [`RemoteAction`].
 */
export type RemoteKind = "click" | "scroll" | "type" | "redirect" | "pointer";

/**
 * Why the visitor's page did not apply a remote action (`remote_applied.reason`, passed
 * on to the agent as `remote_result.reason`). The SDK's client refuses with the first
 * three before the page sees the action; the page's capture (`src/web/mirror.js`)
 * refuses with the others.
 */
export type RemoteRefusal = "masked_target" | "control_not_granted" | "permission_denied" | "session_not_active" | "not_editable" | "unknown_node" | "cross_origin" | "not_ready" | "unknown_action" | "failed";

/**
 * Session status as the SDK reports it.
 */
export type SessionStatus = "none" | "authorizing" | "active" | "ended";

/**
 * Which prompt a tab shows: the session's authorization or the control request.
 */
export type PromptKind = "session" | "control";

/**
 * Why granted (or requested) control ended.
 */
export type ControlEndReason = "denied" | "revoked_by_visitor" | "revoked_by_agent" | "focus_lost" | "session_ended";

/**
 * An agent of a session (seed 002, snake_case). `id` is `ea_…` for covisit agents.
 */
export type Agent = { agent_nickname: string, 
/**
 * Always null for covisit's own agents, per the seed.
 */
email: string | null, 
/**
 * The integrator's id for an agent created through the REST API.
 */
external_id: string | null, id: string, name: string, on_premise: boolean, };

/**
 * A visitor (seed 002, snake_case). Timestamps are ISO-8601 UTC strings as on the wire.
 */
export type Visitor = { added_at: string, api_key: string, browser_name: string | null, call_name: string | null, device_name: string | null, device_type: DeviceType | null, email: string | null, identities: Array<string>, integration: string | null, ip_address: string, is_in_session: boolean, is_online: boolean, is_supported: boolean, 
/**
 * Extra (not in the seed): why `is_supported` is false, the capabilities this
 * browser lacks (`protocol::CAPABILITIES`); absent when it is supported.
 */
missing_capabilities?: Array<string>, is_waiting_for_call: boolean, js_configuration: boolean, last_seen_at: string, last_url: string | null, location_city: string | null, location_country_name: string | null, location_country: string | null, lookup_code: string | null, name: string | null, nickname: string, short_id: string, tags: Array<string>, unique_id: string | null, watch_link: string, sdk: string, };

/**
 * The categories of device the seed allows in `device_type`.
 */
export type DeviceType = "desktop" | "console" | "mobile" | "tablet" | "smarttv" | "wearable" | "embedded";

/**
 * A session (seed 002, snake_case). `ended_at` is null while the session is live.
 */
export type Session = { agents: Array<Agent>, agent_notes: Array<AgentNote>, call_length_seconds: number, call_name: string | null, ended_at: string | null, features_used: Array<string>, formatted_call_length: string, formatted_length: string, metadata: Record<string, unknown>, quality_feedback: Array<QualityFeedback>, visitor_agent_feedback: string | null, visitor_agent_rating: number | null, visitor_email: string | null, visitor_ip_address: string | null, visitor_unique_id: string | null, id: string, length_seconds: number, on_premise: boolean, public_video_url: string | null, secret_video_url: string | null, session_authorized: boolean, source: SessionSource | null, start_url: string | null, started_at: string, video_status: string | null, visitor_id: string, went_live: boolean, };

/**
 * How a session came to be (seed 002 `source`). Serialized with the seed's spelling,
 * spaces included.
 */
export type SessionSource = "api" | "search" | "lookup code" | "personal link" | "agent request" | "integration";

/**
 * One entry of `agent_notes`; `by` is the agent's id.
 */
export type AgentNote = { text: string, by: string, };

/**
 * One entry of `quality_feedback`; `by` is the agent's id, or the visitor's short id.
 */
export type QualityFeedback = { rating: number, feedback: string | null, by: string, };

/**
 * A participant's co-browse communication (seed 000, camelCase, every field).
 */
export type Cobrowsesession = { state: CommunicationState, initialState: CommunicationState, id: string, disconnectType: DisconnectType | null, self: Address, cobrowseSessionId: string, cobrowseRole: CobrowseRole, 
/**
 * Participants this client may control: empty for the sharer.
 */
controlling: Array<string>, viewerUrl: string | null, providerEventTime: string, startAlertingTime: string | null, connectedTime: string | null, disconnectedTime: string | null, provider: string, peerId: string | null, segments: Array<Segment>, wrapup: Wrapup | null, afterCallWork: AfterCallWork | null, afterCallWorkRequired: boolean, };

/**
 * `state` / `initialState` of a communication, mapped from the SDK's session status.
 */
export type CommunicationState = "alerting" | "connected" | "disconnected";

/**
 * What ended a communication (SPEC.md section 2).
 */
export type DisconnectType = "client" | "peer" | "system" | "transport.failure" | "timeout";

/**
 * A participant's role: the visitor shares, agents view.
 */
export type CobrowseRole = "sharer" | "viewer";

/**
 * Address and name data for an endpoint (Genesys `Address`).
 */
export type Address = { name: string | null, nameRaw: string | null, addressNormalized: string | null, addressRaw: string | null, addressDisplayable: string | null, };

/**
 * One activity segment of a participant's timeline (Genesys `Segment`).
 */
export type Segment = { startTime: string, endTime: string | null, type: SegmentType, howEnded: string | null, disconnectType: DisconnectType | null, };

/**
 * The activity of a segment of the participant's timeline.
 */
export type SegmentType = "Alert" | "Interact" | "Hold";

/**
 * Wrap-up data (Genesys `Wrapup`); covisit records none yet, so it stays null.
 */
export type Wrapup = { code: string | null, name: string | null, notes: string | null, tags: Array<string>, durationSeconds: number | null, endTime: string | null, provisional: boolean | null, };

/**
 * After-call work (Genesys `AfterCallWork`).
 */
export type AfterCallWork = { startTime: string | null, endTime: string | null, state: string | null, };

/**
 * A visitor's connection (seed 002, camelCase, every field). The permission fields are
 * flattened from [`Permissions`] so there is one definition of them.
 */
export type Connection = { uniqueConnectionId: string, currentUrl: string | null, activeSince: string, status: ConnectionStatus, expectedDisconnect: ExpectedDisconnect | null, hasFocus: boolean, lastFocusAt: string | null, screenWidth: number, screenHeight: number, audioSupported: boolean, fullTabStatus: FullTabStatus, requireAuthorizationForSession: boolean, requireControlRequest: boolean, allowRemoteConsole: boolean, allowAgentRedirect: boolean, allowRemoteClick: boolean, allowRemoteScroll: boolean, allowRemoteType: boolean, allowFullScreen: boolean, allowRequestFullTab: boolean, cobrowsingVideoEnabled: VideoEnabled, cobrowsingVideoAudioRelationship: VideoAudioRelationship, enableSessionRating: boolean, agentPrompt: string | null, assetsProxyConfigured: boolean, };

/**
 * Whether a connection is currently open.
 */
export type ConnectionStatus = "active" | "disconnected";

/**
 * Full-tab sharing state of a connection.
 */
export type FullTabStatus = "off" | "authorizing" | "active";

/**
 * An announced temporary disconnect (navigation, a page without the SDK).
 */
export type ExpectedDisconnect = { 
/**
 * Seconds until the visitor is back; null when unknown (the default then applies).
 */
returnTimeSeconds: number | null, message: string | null, title: string | null, 
/**
 * When the announcement was made, in milliseconds since the epoch.
 */
ts: number, };

/**
 * The permission and option fields of the seed Connection (camelCase). `Default` is
 * the secure default: authorization and control requests on; console, redirect, full
 * screen and full tab off.
 */
export type Permissions = { requireAuthorizationForSession: boolean, requireControlRequest: boolean, allowRemoteConsole: boolean, allowAgentRedirect: boolean, allowRemoteClick: boolean, allowRemoteScroll: boolean, allowRemoteType: boolean, allowFullScreen: boolean, allowRequestFullTab: boolean, cobrowsingVideoEnabled: VideoEnabled, cobrowsingVideoAudioRelationship: VideoAudioRelationship, enableSessionRating: boolean, agentPrompt: string | null, assetsProxyConfigured: boolean, };

/**
 * `cobrowsingVideoEnabled` values of the seed Connection.
 */
export type VideoEnabled = "two_way" | "visitor_to_agent" | "agent_to_visitor" | "disabled";

/**
 * `cobrowsingVideoAudioRelationship` values of the seed Connection.
 */
export type VideoAudioRelationship = "independent" | "video_requires_audio" | "automatic";

/**
 * Co-browsing: what an agent shows on the visitor's page without control, anchored to
 * the page's content. `node` is a mirror node id of the tab (docs/MIRROR.md; 0: the
 * document) and `ox`/`oy` where that node's box began in the page (document pixels)
 * when the agent drew: the page places the ink relative to the node wherever it is
 * now, and at `ox`/`oy` when it no longer has the node (or `epoch`, the mirror epoch
 * the id belongs to, is not the page's current one: ids are per epoch). Points are CSS
 * pixels from that origin.
 */
export type Ink = { "kind": "laser", node: number, epoch: number, ox: number, oy: number, x: number, y: number, } | { "kind": "stroke", id: number, node: number, 
/**
 * The mirror epoch `node` belongs to (0: unknown, the node is taken as it is).
 */
epoch: number, ox: number, oy: number, shape: InkShape, pinned: boolean, done: boolean, points: Array<[number, number]>, } | { "kind": "clear" };

/**
 * The shapes of an [`Ink::Stroke`].
 */
export type InkShape = "free" | "arrow";

/**
 * Server → visitor, in `{"type": "call", "call": …}` (the SDK hands it to its call file).
 */
export type CallToVisitor = { "kind": "request", agent: Agent, video: boolean, rules: CallRules, } | { "kind": "start", ice_servers: Array<IceServer>, } | { "kind": "signal", signal: CallSignal, } | { "kind": "media", audio: boolean, video: boolean, } | { "kind": "end", reason: CallEndReason, } | { "kind": "share_request", agent: Agent, screen: boolean, } | { "kind": "share_start", ice_servers: Array<IceServer>, } | { "kind": "share_end", reason: CallEndReason, };

/**
 * Visitor (SDK) → server, in `{"type": "call", "call": …}`.
 */
export type CallFromVisitor = { "kind": "accept", audio: boolean, video: boolean, } | { "kind": "signal", signal: CallSignal, } | { "kind": "media", audio: boolean, video: boolean, } | { "kind": "connected" } | { "kind": "end", reason: VisitorCallEnd, } | { "kind": "share_accept" } | { "kind": "share_started" } | { "kind": "share_end", reason: VisitorCallEnd, };

/**
 * Agent console → server, in `{"type": "call", "session_id", "call": …}`.
 */
export type CallFromAgent = { "kind": "start", video: boolean, } | { "kind": "signal", signal: CallSignal, } | { "kind": "media", audio: boolean, video: boolean, } | { "kind": "end", reason?: VisitorCallEnd, } | { "kind": "share_request", screen: boolean, } | { "kind": "share_stop" };

/**
 * Server → agent console, in `{"type": "call", "session_id", "call": …}`: to the
 * console that started the call (or asked for the share) only.
 */
export type CallToAgent = { "kind": "start", ice_servers: Array<IceServer>, rules: CallRules, visitor: MediaState, } | { "kind": "signal", signal: CallSignal, } | { "kind": "share_start", ice_servers: Array<IceServer>, };

/**
 * `session_update.call`: the session's call and share as the agents see them.
 */
export type SessionCall = { state: CallPhase, 
/**
 * The agent who has the call (or whose call last ended).
 */
agent_id: string | null, 
/**
 * The visitor's tab (`uniqueConnectionId`) that has the call.
 */
tab: string | null, video: boolean, rules: CallRules | null, visitor: MediaState, agent: MediaState, 
/**
 * Why the last call ended, until another starts.
 */
reason: CallEndReason | null, 
/**
 * The share: `off`, `authorizing` or `active` (the tab's `fullTabStatus`).
 */
share: FullTabStatus, 
/**
 * The share is of a screen or window (`allowFullScreen`), not of the tab.
 */
share_screen: boolean, share_agent_id: string | null, share_tab: string | null, 
/**
 * Why the last share ended.
 */
share_reason: CallEndReason | null, };

/**
 * Who may send video in a call and how audio and video relate: the visitor page's
 * `cobrowsingVideoEnabled` and `cobrowsingVideoAudioRelationship` (seed Connection).
 */
export type CallRules = { 
/**
 * The visitor's camera may reach the agent (`two_way`, `visitor_to_agent`).
 */
video_to_agent: boolean, 
/**
 * The agent's camera may reach the visitor (`two_way`, `agent_to_visitor`).
 */
video_to_visitor: boolean, 
/**
 * `independent`; `video_requires_audio`: a side's camera is on only while its
 * microphone is; `automatic`: turning the camera on turns the microphone on too.
 */
relationship: VideoAudioRelationship, };

/**
 * Where a call stands (`session_update.call`).
 */
export type CallPhase = "none" | "ringing" | "connecting" | "connected";

/**
 * One step of WebRTC negotiation, relayed to the other end: a description (the agent
 * offers, the visitor answers) or a candidate.
 */
export type CallSignal = { channel: MediaChannel, description?: SessionDescription, candidate?: IceCandidate, };

/**
 * Which peer connection a `signal` is for: the call's, or the visitor's tab or
 * screen share (its own connection, so a share needs no call).
 */
export type MediaChannel = "call" | "share";

/**
 * `RTCSessionDescriptionInit`.
 */
export type SessionDescription = { type: SdpType, sdp: string, };

/**
 * An SDP's role in the offer/answer exchange.
 */
export type SdpType = "offer" | "answer";

/**
 * `RTCIceCandidateInit`.
 */
export type IceCandidate = { candidate: string, sdpMid: string | null, sdpMLineIndex: number | null, };

/**
 * Microphone and camera of one end of a call: on or off.
 */
export type MediaState = { audio: boolean, video: boolean, };

/**
 * An ICE server for `RTCPeerConnection` (`RTCIceServer`): STUN, or TURN with
 * time-limited credentials the server derived from its `--turn-secret`.
 */
export type IceServer = { urls: string, username?: string, credential?: string, };

/**
 * Why a call (or a share) ended (`callEnd {reason}`).
 */
export type CallEndReason = "hung_up_by_agent" | "hung_up_by_visitor" | "declined" | "media_denied" | "session_ended" | "tab_closed" | "agent_left" | "failed";

/**
 * Why the visitor's side refused or dropped a call.
 */
export type VisitorCallEnd = "declined" | "media_denied" | "failed";

/** Every error `code` (src/core/codes.rs; docs/PROTOCOL.md, "Error codes"). */
export type ErrorCode =
  | "frame_too_large"
  | "malformed_frame"
  | "unknown_message_type"
  | "unsupported_protocol_version"
  | "encode_failed"
  | "hello_required"
  | "unexpected_hello"
  | "invalid_api_key"
  | "invalid_secret_key"
  | "origin_not_allowed"
  | "unauthorized"
  | "forbidden"
  | "invalid_call_token"
  | "rate_limited"
  | "internal"
  | "unavailable"
  | "wrong_session_state"
  | "wrong_control_state"
  | "unknown_connection"
  | "duplicate_connection"
  | "unknown_agent"
  | "duplicate_agent"
  | "visitor_offline"
  | "visitor_unsupported"
  | "invalid_argument"
  | "unknown_visitor"
  | "unknown_session"
  | "not_in_session"
  | "invalid_mirror_frame"
  | "control_not_granted"
  | "permission_denied"
  | "wrong_tab"
  | "unknown_action"
  | "wrong_call_state"
  | "media_not_allowed"
  | "invalid_call_signal"
  | "call_unsupported"
  | "media_denied"
  | "config_not_object"
  | "config_unknown_key"
  | "config_wrong_type"
  | "config_missing_key"
  | "config_invalid_value"
  | "too_many_events"
  | "invalid_event_name"
  | "invalid_attributes"
  | "invalid_page_view"
  | "bad_json"
  | "not_found"
  | "method_not_allowed"
  | "payload_too_large"
  | "invalid_visitor_secret"
  | "csrf_token_invalid"
  | "invalid_credentials"
  | "too_many_attempts"
  | "user_disabled"
  | "link_invalid"
  | "weak_password"
  | "email_taken"
  | "username_taken"
  | "last_admin"
  | "already_revoked"
  | "recording_not_available"
  | "recording_link_invalid"
  | "recording_link_expired"
  | "assets_not_enabled"
  | "asset_origin_not_allowed"
  | "asset_address_refused"
  | "asset_type_not_allowed"
  | "asset_too_large"
  | "asset_unavailable"
  | "unknown_event"
  | "stopped"
  | "not_connected"
  | "already_initialized"
  | "unknown_command"
  | "not_loaded"
  | "unsupported";
