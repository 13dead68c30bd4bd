//! The control actor: single writer of the registries (campaigns, merchants).
//! These change rarely, so each command is journaled on its own before it takes
//! effect in the registry and before the reply.

use super::events::{encode, ControlEvent, CONTROL_JOURNAL};
use super::recovery::apply_control;
use super::registry::Registry;
use super::shard::Tx;
use super::Clock;
use crate::api::{
    CampaignAction, CampaignStatus, CampaignView, EngineError, MerchantInput, Refusal,
};
use crate::domain::{valid_id, valid_region, CampaignSpec, FieldError};
use actix::prelude::*;
use std::sync::Arc;
use yunquan_storage::Store;

/// Most terminals one merchant may register.
pub const TERMINALS_PER_MERCHANT_MAX: usize = 1_000;
/// Longest merchant name, in characters.
pub const MERCHANT_NAME_CHARS_MAX: usize = 200;

/// What the control actor can be asked.
#[derive(Debug)]
pub enum ControlCmd {
    /// Define a campaign.
    Create(Box<CampaignSpec>, Tx<CampaignView>),
    /// Change a campaign's status.
    Action(String, CampaignAction, Tx<CampaignView>),
    /// Register merchants.
    Merchants(Vec<MerchantInput>, Tx<Vec<Result<(), EngineError>>>),
}

impl Message for ControlCmd {
    type Result = ();
}

/// Owner of the control journal.
pub struct ControlActor {
    /// Durable journal.
    store: Arc<dyn Store>,
    /// The registries it writes.
    registry: Arc<Registry>,
    /// Server clock.
    clock: Clock,
    /// Sequence of the next record.
    next_seq: u64,
}

impl std::fmt::Debug for ControlActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlActor")
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl Actor for ControlActor {
    type Context = Context<Self>;
}

/// Field-level problems of a merchant registration.
pub fn check_merchant(m: &MerchantInput) -> Vec<FieldError> {
    let mut e = Vec::new();
    let mut bad = |f: &str, r: &str| {
        e.push(FieldError {
            field: f.into(),
            reason: r.into(),
        })
    };
    if !valid_id(&m.id) {
        bad(
            "id",
            "1-64 printable ASCII characters without spaces or '/'",
        );
    }
    if m.name.trim().is_empty()
        || m.name.chars().count() > MERCHANT_NAME_CHARS_MAX
        || m.name.chars().any(char::is_control)
    {
        bad("name", "1-200 characters, no control characters");
    }
    if !valid_region(&m.region) {
        bad("region", "1-32 of a-z, 0-9, _");
    }
    if m.terminals.len() > TERMINALS_PER_MERCHANT_MAX {
        bad("terminals", "at most 1000 terminals");
    }
    if m.terminals.iter().any(|t| !valid_id(t)) {
        bad(
            "terminals",
            "terminal ids are 1-64 printable ASCII characters without spaces or '/'",
        );
    }
    e
}

impl ControlActor {
    /// A control actor over a recovered registry.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        clock: Clock,
        next_seq: u64,
    ) -> Self {
        ControlActor {
            store,
            registry,
            clock,
            next_seq,
        }
    }

    /// Journals events, then applies them to the registry.
    fn commit(&mut self, events: Vec<ControlEvent>) -> Result<(), EngineError> {
        if events.is_empty() {
            return Ok(());
        }
        let bytes: Vec<Vec<u8>> = events.iter().map(encode).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        self.store
            .append(CONTROL_JOURNAL, self.next_seq, &refs)
            .map_err(|e| EngineError::Unavailable(format!("control journal append: {e}")))?;
        self.next_seq += refs.len() as u64;
        for ev in events {
            apply_control(&self.registry, ev);
        }
        Ok(())
    }

    fn create(&mut self, spec: &CampaignSpec) -> Result<CampaignView, EngineError> {
        let id = format!("c{}", self.next_seq);
        let campaign = spec.validate(id.clone()).map_err(EngineError::Invalid)?;
        let at_ms = (self.clock)();
        self.commit(vec![ControlEvent::CampaignCreated {
            campaign: Box::new(campaign),
            at_ms,
        }])?;
        self.registry
            .campaigns
            .get(&id)
            .map(|e| e.view())
            .ok_or(EngineError::Refused(Refusal::UnknownCampaign))
    }

    fn action(&mut self, id: &str, action: CampaignAction) -> Result<CampaignView, EngineError> {
        let current = *self
            .registry
            .campaigns
            .get(id)
            .ok_or(Refusal::UnknownCampaign)?
            .status
            .read();
        use CampaignStatus as S;
        let next = match (action, current) {
            (CampaignAction::Publish, S::Draft) => S::Published,
            (CampaignAction::Pause, S::Published) => S::Paused,
            (CampaignAction::Resume, S::Paused) => S::Published,
            (CampaignAction::End, s) if s != S::Ended => S::Ended,
            (a, s) => {
                return Err(Refusal::WrongStatus(
                    format!("cannot {a:?} a {s:?} campaign").to_lowercase(),
                )
                .into())
            }
        };
        let at_ms = (self.clock)();
        self.commit(vec![ControlEvent::StatusChanged {
            id: id.to_owned(),
            status: next,
            at_ms,
        }])?;
        self.registry
            .campaigns
            .get(id)
            .map(|e| e.view())
            .ok_or(EngineError::Refused(Refusal::UnknownCampaign))
    }

    fn merchants(
        &mut self,
        batch: Vec<MerchantInput>,
    ) -> Result<Vec<Result<(), EngineError>>, EngineError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for m in batch {
            let problems = check_merchant(&m);
            if !problems.is_empty() {
                outcomes.push(Err(EngineError::Invalid(problems)));
                continue;
            }
            if self.registry.merchants.contains_key(&m.id) || !seen.insert(m.id.clone()) {
                outcomes.push(Err(Refusal::AlreadyRegistered.into()));
                continue;
            }
            outcomes.push(Ok(()));
            events.push(ControlEvent::MerchantRegistered {
                id: m.id,
                name: m.name,
                category: m.category,
                region: m.region,
                terminals: m.terminals,
            });
        }
        self.commit(events)?;
        Ok(outcomes)
    }
}

impl Handler<ControlCmd> for ControlActor {
    type Result = ();

    fn handle(&mut self, cmd: ControlCmd, _: &mut Context<Self>) {
        match cmd {
            ControlCmd::Create(spec, tx) => {
                let _ = tx.send(self.create(&spec));
            }
            ControlCmd::Action(id, action, tx) => {
                let _ = tx.send(self.action(&id, action));
            }
            ControlCmd::Merchants(batch, tx) => {
                let _ = tx.send(self.merchants(batch));
            }
        }
    }
}
