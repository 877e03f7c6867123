//! The seed data model: the REST objects Visitor, Session and Agent (snake_case, seed
//! 002), the embedded Connection (camelCase, seed 002) and the Genesys-style
//! Cobrowsesession communication (camelCase, seeds 000/001), the journey Session (seed
//! 003, [`JourneySession`]) and the analytics export (seed 004, [`AnalyticsSession`]
//! inside [`AnalyticsConversation`]). Field names are the seeds'
//! spelling, exactly; `tests/fixtures/seed_fields.json` lists them and tests hold us to it.

mod agent;
mod analytics;
mod cobrowse;
mod connection;
mod journey;
mod session;
mod visitor;

pub use agent::Agent;
pub use analytics::{
    AnalyticsConversation, AnalyticsConversationSegment, AnalyticsParticipant, AnalyticsSession,
    AnalyticsSessionMetric,
};
pub use cobrowse::{
    Address, AfterCallWork, CobrowseRole, Cobrowsesession, CommunicationState, DisconnectType,
    Segment, SegmentType, Wrapup,
};
pub use connection::{Connection, ConnectionStatus, ExpectedDisconnect, FullTabStatus};
pub use journey::{
    AddressableEntityRef, Browser, ConnectedQueue, ConnectedUser, ConversationChannel,
    CustomEventAttribute, CustomEventAttributeList, Device, JourneyCampaign, JourneyGeolocation,
    JourneyPage, JourneySession, OutcomeAchievement, Referrer, SdkLibrary, SessionLastEvent,
    SessionSegmentAssignment,
};
pub use session::{AgentNote, QualityFeedback, Session, SessionSource};
pub use visitor::{DeviceType, Visitor};
