//! The vocabulary of integrations: capture sources, webhook events and deliveries.

use super::lead::text_enum;

text_enum!(
    /// How a capture source receives leads: `form` from a browser (CORS, honeypot,
    /// rate limit) or `webhook` from a server (signed with the source's secret).
    CaptureKind { Form = "form", Webhook = "webhook" }
);

text_enum!(
    /// What happened to a record. `opportunity.stage_changed` comes with every change
    /// of stage; `won`, `lost` and `reopened` come beside it when the status changes.
    EventType {
        LeadCreated = "lead.created", LeadUpdated = "lead.updated",
        LeadConverted = "lead.converted", OpportunityCreated = "opportunity.created",
        OpportunityUpdated = "opportunity.updated",
        OpportunityStageChanged = "opportunity.stage_changed",
        OpportunityWon = "opportunity.won", OpportunityLost = "opportunity.lost",
        OpportunityReopened = "opportunity.reopened",
        OpportunityStalled = "opportunity.stalled", ActivityCreated = "activity.created",
    }
);

text_enum!(
    /// Where a delivery stands: `pending` (due now or at `next_attempt_at`),
    /// `delivered` (a 2xx answer), `failed` (retries exhausted, or the subscription
    /// answered 410 Gone or was deleted).
    DeliveryStatus { Pending = "pending", Delivered = "delivered", Failed = "failed" }
);

/// The event type of a test delivery (`POST /webhooks/{id}/test`), sent to that
/// subscription only.
pub const PING: &str = "webhook.ping";
