//! Tag `audit`: the audit events behind every write (auditor, admin).

use super::Operation;
use crate::client::{path, Call, Client};
use crate::model::audit::{AuditEvent, AuditEventFilter};
use crate::pagination::Pager;

impl Client {
    /// `listAuditEvents` — `GET /v1/audit/events?subject=&action=`.
    pub fn list_audit_events(&self, filter: &AuditEventFilter) -> Pager<AuditEvent> {
        let mut query = Vec::new();
        if let Some(s) = &filter.subject {
            query.push(("subject", s.clone()));
        }
        if let Some(a) = &filter.action {
            query.push(("action", a.clone()));
        }
        Pager::new(self.clone(), path(&["audit", "events"]), query)
    }

    /// `getAuditEvent` — `GET /v1/audit/events/{seq}`.
    pub fn get_audit_event(&self, seq: u64) -> Operation<AuditEvent> {
        let call = path(&["audit", "events", &seq.to_string()]).map(Call::get);
        Operation::json(self, call)
    }
}
