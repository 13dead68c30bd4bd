//! A shard's state and the rules that change it. Pure logic, no actors and no I/O:
//! `execute_*` decides, emits events and applies them; `apply` replays an event.
//! The shard actor wraps this with group commit.

use super::events::ShardEvent;
use super::idempotency::IdemTable;
use super::registry::{CampaignEntry, Merchant, Registry};
use crate::api::{CampaignStatus, CouponStatus, Refusal};
use crate::domain::window::local_date;
use crate::domain::{Category, Fen, PersonKey, RefundPolicy, RoundState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// One redemption of a coupon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedemptionRec {
    /// Merchant.
    pub merchant: String,
    /// Terminal.
    pub terminal: String,
    /// POS request number.
    pub request_no: String,
    /// Order in fen.
    pub order_fen: u64,
    /// Discount in fen.
    pub discount_fen: u64,
    /// Merchant category then.
    pub category: Category,
    /// Merchant region then.
    pub region: String,
    /// Instant.
    pub at_ms: i64,
    /// When reversed: (instant, whether the coupon came back).
    pub reversed: Option<(i64, bool)>,
}

/// A coupon in a wallet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Coupon {
    /// Campaign id.
    pub campaign: String,
    /// Round index.
    pub round: u32,
    /// Tier index.
    pub tier: u32,
    /// Claiming account.
    pub account: String,
    /// Claim instant.
    pub at_ms: i64,
    /// First redeemable instant.
    pub valid_from_ms: i64,
    /// Last redeemable instant.
    pub valid_until_ms: i64,
    /// Redemptions in order; at most the last one stands.
    pub redemptions: Vec<RedemptionRec>,
}

impl Coupon {
    /// The redemption that stands, if any: (n, record).
    pub fn standing(&self) -> Option<(u32, &RedemptionRec)> {
        match self.redemptions.last() {
            Some(r) if r.reversed.is_none() => Some((self.redemptions.len() as u32, r)),
            _ => None,
        }
    }

    /// Status at `now_ms`.
    pub fn status(&self, now_ms: i64) -> CouponStatus {
        match self.redemptions.last() {
            Some(r) if r.reversed.is_none() => CouponStatus::Redeemed,
            Some(RedemptionRec {
                reversed: Some((_, false)),
                ..
            }) => CouponStatus::Forfeited,
            _ if now_ms > self.valid_until_ms => CouponStatus::Expired,
            _ => CouponStatus::Available,
        }
    }
}

/// A natural person's wallet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    /// Second half of the identity hash (collision check).
    pub check: u64,
    /// Home region.
    pub region: String,
    /// Accounts of this person.
    pub accounts: Vec<String>,
    /// Coupons; serial n is `coupons[n - 1]`.
    pub coupons: Vec<Coupon>,
}

/// Memo of a claim idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClaimMemo {
    /// Campaign the key was used for.
    pub campaign: String,
    /// Tier the key was used for.
    pub tier: u32,
    /// First result: the coupon serial, or the refusal.
    pub result: Result<u32, Refusal>,
}

/// Memo of a POS request number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RedeemMemo {
    /// Coupon owner.
    pub route: u64,
    /// Coupon serial.
    pub serial: u32,
    /// Order amount the request carried.
    pub order_fen: u64,
    /// First result: the redemption number, or the refusal.
    pub result: Result<u32, Refusal>,
}

/// Side effects on shared counters taken for events not yet durable.
#[derive(Debug)]
pub enum Effect {
    /// A stock unit taken for a grant: given back if the write fails.
    Unit(Arc<CampaignEntry>, u32, u32),
    /// Budget committed for a redemption: given back if the write fails.
    Budget(Arc<CampaignEntry>, u64),
    /// Budget to release once a reversal is durable.
    ReleaseBudget(Arc<CampaignEntry>, u64),
}

/// Events and effects produced by executing commands, pending durability.
#[derive(Debug, Default)]
pub struct Pending {
    /// Events to journal.
    pub events: Vec<ShardEvent>,
    /// Counter effects to undo (or finish) depending on the write's outcome.
    pub effects: Vec<Effect>,
    /// Idempotency memos made for commands of this batch: forgotten if the write fails.
    pub claim_keys: Vec<(String, String)>,
    /// POS request memos of this batch.
    pub request_nos: Vec<(String, String)>,
}

impl Pending {
    /// Empties it for the next batch, keeping the vectors' capacity.
    pub fn clear(&mut self) {
        self.events.clear();
        self.effects.clear();
        self.claim_keys.clear();
        self.request_nos.clear();
    }
}

/// All state a shard owns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardState {
    /// Wallets by person routing key. foldhash, seeded per process, instead of SipHash,
    /// which took an eighth of a restart's samples.
    pub persons: HashMap<u64, Person, foldhash::fast::RandomState>,
    /// (account, idempotency key) -> first claim result.
    pub claim_keys: IdemTable<(String, String), ClaimMemo>,
    /// (merchant, request number) -> first redemption result.
    pub request_nos: IdemTable<(String, String), RedeemMemo>,
}

/// A decided claim: the coupon serial and whether it replays an earlier request.
pub type ClaimResult = Result<(u32, bool), Refusal>;

impl ShardState {
    /// Empty state remembering at most `keys_max` keys of each kind.
    pub fn new(keys_max: usize) -> Self {
        ShardState {
            persons: HashMap::default(),
            claim_keys: IdemTable::new(keys_max),
            request_nos: IdemTable::new(keys_max),
        }
    }

    /// Applies one event (at runtime right after deciding it, and during replay).
    pub fn apply(&mut self, ev: &ShardEvent) {
        match ev {
            ShardEvent::Registered {
                account,
                route,
                check,
                region,
            } => {
                let p = self.persons.entry(*route).or_insert_with(|| Person {
                    check: *check,
                    region: region.clone(),
                    accounts: Vec::new(),
                    coupons: Vec::new(),
                });
                if !p.accounts.contains(account) {
                    p.accounts.push(account.clone());
                }
            }
            ShardEvent::Granted {
                route,
                serial,
                account,
                campaign,
                round,
                tier,
                at_ms,
                valid_from_ms,
                valid_until_ms,
                idempotency_key,
            } => {
                let Some(p) = self.persons.get_mut(route) else {
                    return;
                };
                assert_eq!(
                    *serial as usize,
                    p.coupons.len() + 1,
                    "coupon serials are dense"
                );
                p.coupons.push(Coupon {
                    campaign: campaign.clone(),
                    round: *round,
                    tier: *tier,
                    account: account.clone(),
                    at_ms: *at_ms,
                    valid_from_ms: *valid_from_ms,
                    valid_until_ms: *valid_until_ms,
                    redemptions: Vec::new(),
                });
                if let Some(k) = idempotency_key {
                    let memo = ClaimMemo {
                        campaign: campaign.clone(),
                        tier: *tier,
                        result: Ok(*serial),
                    };
                    self.claim_keys
                        .insert((account.clone(), k.clone()), memo, *at_ms);
                }
            }
            ShardEvent::Redeemed {
                route,
                serial,
                n,
                merchant,
                terminal,
                request_no,
                order_fen,
                discount_fen,
                category,
                region,
                at_ms,
            } => {
                let Some(c) = self.coupon_mut(*route, *serial) else {
                    return;
                };
                assert_eq!(
                    *n as usize,
                    c.redemptions.len() + 1,
                    "redemption numbers are dense"
                );
                assert!(
                    c.standing().is_none(),
                    "a coupon is redeemed at most once at a time"
                );
                c.redemptions.push(RedemptionRec {
                    merchant: merchant.clone(),
                    terminal: terminal.clone(),
                    request_no: request_no.clone(),
                    order_fen: *order_fen,
                    discount_fen: *discount_fen,
                    category: *category,
                    region: region.clone(),
                    at_ms: *at_ms,
                    reversed: None,
                });
                let memo = RedeemMemo {
                    route: *route,
                    serial: *serial,
                    order_fen: *order_fen,
                    result: Ok(*n),
                };
                self.request_nos
                    .insert((merchant.clone(), request_no.clone()), memo, *at_ms);
            }
            ShardEvent::Reversed {
                route,
                serial,
                n,
                at_ms,
                restored,
            } => {
                if let Some(r) = self
                    .coupon_mut(*route, *serial)
                    .and_then(|c| c.redemptions.get_mut(*n as usize - 1))
                {
                    r.reversed = Some((*at_ms, *restored));
                }
            }
        }
    }

    /// A coupon by owner and serial.
    pub fn coupon(&self, route: u64, serial: u32) -> Option<&Coupon> {
        self.persons
            .get(&route)?
            .coupons
            .get((serial as usize).checked_sub(1)?)
    }

    fn coupon_mut(&mut self, route: u64, serial: u32) -> Option<&mut Coupon> {
        self.persons
            .get_mut(&route)?
            .coupons
            .get_mut((serial as usize).checked_sub(1)?)
    }

    fn emit(&mut self, ev: ShardEvent, out: &mut Pending) {
        self.apply(&ev);
        out.events.push(ev);
    }

    /// Registers an account of a person. Registering the same account again is a no-op.
    pub fn register(
        &mut self,
        account: &str,
        person: PersonKey,
        region: &str,
        out: &mut Pending,
    ) -> Result<(), Refusal> {
        if let Some(p) = self.persons.get(&person.route) {
            if p.check != person.check {
                // Two different identity hashes share a 64-bit route: astronomically rare,
                // refused rather than merging two people's limits.
                return Err(Refusal::AlreadyRegistered);
            }
            if p.accounts.iter().any(|a| a == account) {
                return Ok(());
            }
        }
        let ev = ShardEvent::Registered {
            account: account.to_owned(),
            route: person.route,
            check: person.check,
            region: region.to_owned(),
        };
        self.emit(ev, out);
        Ok(())
    }

    /// Grabs a coupon. See the module docs of `engine` for the rules.
    #[allow(clippy::too_many_arguments)]
    pub fn claim(
        &mut self,
        registry: &Registry,
        route: u64,
        account: &str,
        campaign_id: &str,
        tier: u32,
        idempotency_key: Option<&str>,
        now_ms: i64,
        out: &mut Pending,
    ) -> ClaimResult {
        let key = idempotency_key.map(|k| (account.to_owned(), k.to_owned()));
        if let Some(memo) = key.as_ref().and_then(|k| self.claim_keys.get(k, now_ms)) {
            if memo.campaign != campaign_id || memo.tier != tier {
                return Err(Refusal::IdempotencyConflict);
            }
            return memo.result.clone().map(|s| (s, true));
        }
        let result = self.decide_claim(
            registry,
            route,
            account,
            campaign_id,
            tier,
            idempotency_key,
            now_ms,
            out,
        );
        if let Some(k) = key {
            let memo = ClaimMemo {
                campaign: campaign_id.to_owned(),
                tier,
                result: result.clone(),
            };
            // A grant's memo was made by `apply`; refusals are remembered here.
            self.claim_keys.insert(k.clone(), memo, now_ms);
            out.claim_keys.push(k);
        }
        result.map(|s| (s, false))
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_claim(
        &mut self,
        registry: &Registry,
        route: u64,
        account: &str,
        campaign_id: &str,
        tier: u32,
        idempotency_key: Option<&str>,
        now_ms: i64,
        out: &mut Pending,
    ) -> Result<u32, Refusal> {
        let entry = registry
            .campaigns
            .get(campaign_id)
            .map(|e| Arc::clone(e.value()))
            .ok_or(Refusal::UnknownCampaign)?;
        let c = &entry.campaign;
        if tier as usize >= c.tiers.len() {
            return Err(Refusal::UnknownTier);
        }
        match *entry.status.read() {
            CampaignStatus::Draft => return Err(Refusal::NotPublished),
            CampaignStatus::Paused => return Err(Refusal::Paused),
            CampaignStatus::Ended => return Err(Refusal::Ended),
            CampaignStatus::Published => {}
        }
        let round = match c.round_at(now_ms) {
            RoundState::Live(r) => r as u32,
            RoundState::NotStarted | RoundState::Between(_) => return Err(Refusal::NotStarted),
            RoundState::Ended => return Err(Refusal::Ended),
        };
        let person = self.persons.get(&route).ok_or(Refusal::UnknownAccount)?;
        let (mut same_tier, mut same_round, mut same_day) = (0u32, 0u32, 0u32);
        let today = local_date(c.timezone, now_ms);
        for cp in person
            .coupons
            .iter()
            .filter(|cp| cp.campaign == campaign_id)
        {
            if cp.round == round {
                same_round += 1;
                if cp.tier == tier {
                    same_tier += 1;
                }
            }
            if local_date(c.timezone, cp.at_ms) == today {
                same_day += 1;
            }
        }
        let l = c.limits;
        if same_tier >= l.per_tier_per_round {
            return Err(Refusal::LimitReached("per tier per round".into()));
        }
        if l.per_round.is_some_and(|m| same_round >= m) {
            return Err(Refusal::LimitReached("per round".into()));
        }
        if l.per_day.is_some_and(|m| same_day >= m) {
            return Err(Refusal::LimitReached("per day".into()));
        }
        if !entry.take_unit(round, tier) {
            return Err(Refusal::SoldOut);
        }
        let serial = person.coupons.len() as u32 + 1;
        let (valid_from_ms, valid_until_ms) = c.validity.window(c.timezone, now_ms);
        out.effects
            .push(Effect::Unit(Arc::clone(&entry), round, tier));
        let ev = ShardEvent::Granted {
            route,
            serial,
            account: account.to_owned(),
            campaign: campaign_id.to_owned(),
            round,
            tier,
            at_ms: now_ms,
            valid_from_ms,
            valid_until_ms,
            idempotency_key: idempotency_key.map(str::to_owned),
        };
        self.emit(ev, out);
        Ok(serial)
    }

    /// Prices a coupon at a merchant now, checking everything a redemption checks.
    pub fn price(
        &self,
        registry: &Registry,
        route: u64,
        serial: u32,
        merchant: &Merchant,
        order_fen: u64,
        now_ms: i64,
    ) -> Result<(Arc<CampaignEntry>, Fen), Refusal> {
        let cp = self.coupon(route, serial).ok_or(Refusal::CouponNotFound)?;
        let entry = registry
            .campaigns
            .get(&cp.campaign)
            .map(|e| Arc::clone(e.value()))
            .ok_or(Refusal::CouponNotFound)?;
        match cp.status(now_ms) {
            CouponStatus::Redeemed | CouponStatus::Forfeited => {
                return Err(Refusal::AlreadyRedeemed)
            }
            CouponStatus::Expired => return Err(Refusal::Expired),
            CouponStatus::Available => {}
        }
        if now_ms < cp.valid_from_ms {
            return Err(Refusal::NotYetValid);
        }
        let c = &entry.campaign;
        if merchant.category == Category::Utility {
            return Err(Refusal::NotApplicable(
                "coupons never apply to bills, taxes or fees".into(),
            ));
        }
        if !c.applies_at(
            cp.tier as usize,
            merchant.category,
            &merchant.region,
            &merchant.id,
        ) {
            return Err(Refusal::NotApplicable(
                "category, region or merchant not covered by the coupon".into(),
            ));
        }
        let order =
            Fen::new(order_fen).map_err(|_| Refusal::BelowThreshold { min_spend_fen: 0 })?;
        let tier = &c.tiers[cp.tier as usize];
        let priced = tier.discount.apply(order).ok_or(Refusal::BelowThreshold {
            min_spend_fen: tier.discount.min_spend().get(),
        })?;
        Ok((entry, priced.discount))
    }

    /// Redeems a coupon for a POS request; a repeated request number replays.
    #[allow(clippy::too_many_arguments)]
    pub fn redeem(
        &mut self,
        registry: &Registry,
        route: u64,
        serial: u32,
        merchant: &Merchant,
        terminal: &str,
        request_no: &str,
        order_fen: u64,
        now_ms: i64,
        out: &mut Pending,
    ) -> Result<(u32, bool), Refusal> {
        let key = (merchant.id.clone(), request_no.to_owned());
        if let Some(m) = self.request_nos.get(&key, now_ms) {
            if m.route != route || m.serial != serial || m.order_fen != order_fen {
                return Err(Refusal::IdempotencyConflict);
            }
            return m.result.clone().map(|n| (n, true));
        }
        let result = self.decide_redeem(
            registry, route, serial, merchant, terminal, request_no, order_fen, now_ms, out,
        );
        if let Err(r) = &result {
            self.request_nos.insert(
                key.clone(),
                RedeemMemo {
                    route,
                    serial,
                    order_fen,
                    result: Err(r.clone()),
                },
                now_ms,
            );
            out.request_nos.push(key);
        }
        result.map(|n| (n, false))
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_redeem(
        &mut self,
        registry: &Registry,
        route: u64,
        serial: u32,
        merchant: &Merchant,
        terminal: &str,
        request_no: &str,
        order_fen: u64,
        now_ms: i64,
        out: &mut Pending,
    ) -> Result<u32, Refusal> {
        let (entry, discount) = self.price(registry, route, serial, merchant, order_fen, now_ms)?;
        if !entry.take_budget(discount.get()) {
            return Err(Refusal::BudgetExhausted);
        }
        out.effects
            .push(Effect::Budget(Arc::clone(&entry), discount.get()));
        let n = self
            .coupon(route, serial)
            .map_or(1, |c| c.redemptions.len() as u32 + 1);
        let ev = ShardEvent::Redeemed {
            route,
            serial,
            n,
            merchant: merchant.id.clone(),
            terminal: terminal.to_owned(),
            request_no: request_no.to_owned(),
            order_fen,
            discount_fen: discount.get(),
            category: merchant.category,
            region: merchant.region.clone(),
            at_ms: now_ms,
        };
        self.emit(ev, out);
        out.request_nos
            .push((merchant.id.clone(), request_no.to_owned()));
        Ok(n)
    }

    /// Reverses redemption `n`; reversing twice is a no-op that answers the same.
    /// Returns (coupon status afterwards, discount released).
    #[allow(clippy::too_many_arguments)]
    pub fn reverse(
        &mut self,
        registry: &Registry,
        route: u64,
        serial: u32,
        n: u32,
        merchant: &str,
        now_ms: i64,
        out: &mut Pending,
    ) -> Result<(CouponStatus, u64), Refusal> {
        let cp = self
            .coupon(route, serial)
            .ok_or(Refusal::RedemptionNotFound)?;
        let rec = cp
            .redemptions
            .get((n as usize).wrapping_sub(1))
            .ok_or(Refusal::RedemptionNotFound)?;
        if rec.merchant != merchant {
            // Another merchant's redemption is not visible to this one.
            return Err(Refusal::RedemptionNotFound);
        }
        let discount = rec.discount_fen;
        if rec.reversed.is_some() {
            return Ok((cp.status(now_ms), discount));
        }
        let entry = registry
            .campaigns
            .get(&cp.campaign)
            .map(|e| Arc::clone(e.value()))
            .ok_or(Refusal::CouponNotFound)?;
        let restored = entry.campaign.refund_policy == RefundPolicy::ReturnIfValid
            && now_ms <= cp.valid_until_ms;
        out.effects.push(Effect::ReleaseBudget(entry, discount));
        self.emit(
            ShardEvent::Reversed {
                route,
                serial,
                n,
                at_ms: now_ms,
                restored,
            },
            out,
        );
        let status = self
            .coupon(route, serial)
            .map_or(CouponStatus::Forfeited, |c| c.status(now_ms));
        Ok((status, discount))
    }

    /// Forgets the memos a failed batch made (the state itself is reloaded from the journal).
    pub fn forget(&mut self, pending: &Pending) {
        for k in &pending.claim_keys {
            self.claim_keys.remove(k);
        }
        for k in &pending.request_nos {
            self.request_nos.remove(k);
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
