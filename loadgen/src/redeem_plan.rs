//! The pure half of the redemption phase: for each granted coupon, whether it is
//! spent, where, on what basket, and whether the till resends or refunds it.

use crate::basket::BasketModel;
use crate::plan::Plan;
use crate::rng::{hash3, rng_for, Stream};
use rand::Rng;
use yunquan_actors::domain::Category;

/// Share of spent coupons first presented at a utility biller, where the server must
/// refuse them (`not_applicable`): coupons never pay water, power, gas or taxes [E].
pub const UTILITY_PROBE_SHARE: f64 = 0.01;

/// A coupon the server granted us (an acknowledged claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// Canonical coupon code.
    pub code: String,
    /// Participant slot of the claiming account.
    pub slot: u32,
    /// Tier index.
    pub tier: u32,
}

/// One till sale using one coupon.
#[derive(Debug, Clone, PartialEq)]
pub struct RedeemJob {
    /// Index of the coupon in the granted list.
    pub coupon: usize,
    /// Index of the redeeming merchant in [`Plan::merchants`].
    pub merchant: usize,
    /// Order amount in fen.
    pub order_fen: u64,
    /// The POS request number (unique per job).
    pub request_no: String,
    /// The POS sends the same request number twice at once.
    pub resend: bool,
    /// The sale is refunded in full afterwards (reversed).
    pub refund: bool,
    /// A utility biller (index into merchants) the coupon is first tried at.
    pub utility_probe: Option<usize>,
}

/// Picks a merchant of `category`: the first `concentration[0]` share of them take
/// `concentration[1]` of the sales.
fn pick_merchant<R: Rng>(plan: &Plan, category: Category, rng: &mut R) -> Option<usize> {
    let range = plan
        .merchants_by_category
        .iter()
        .find(|(c, _)| *c == category)
        .map(|(_, r)| r.clone())?;
    let n = range.len();
    if n == 0 {
        return None;
    }
    let hot = ((n as f64 * plan.concentration[0]).ceil() as usize).clamp(1, n);
    let i = if hot == n || rng.random::<f64>() < plan.concentration[1] {
        rng.random_range(0..hot)
    } else {
        rng.random_range(hot..n)
    };
    Some(range.start + i)
}

/// The redemption jobs for `granted`, in the order the tills send them.
pub fn plan_redemptions(plan: &Plan, granted: &[Granted]) -> Vec<RedeemJob> {
    let Some(model) = BasketModel::new(&plan.redemption) else {
        return Vec::new();
    };
    // Decisions hang off (slot, tier), not off arrival order or the server's codes,
    // so the same grants always give the same jobs.
    let mut order: Vec<(u64, usize)> = granted
        .iter()
        .enumerate()
        .map(|(i, g)| {
            (
                hash3(
                    plan.seed,
                    Stream::Redeem,
                    (u64::from(g.slot) << 8) | u64::from(g.tier),
                ),
                i,
            )
        })
        .collect();
    order.sort_unstable();
    let r = &plan.redemption;
    let mut jobs = Vec::new();
    for (key, i) in order {
        let Some(g) = granted.get(i) else { continue };
        let Some(tier) = plan.tiers.get(g.tier as usize) else {
            continue;
        };
        let mut rng = rng_for(plan.seed, Stream::Redeem, key);
        if rng.random::<f64>() >= tier.redeem_rate {
            continue;
        }
        let Some(merchant) = pick_merchant(plan, tier.category, &mut rng) else {
            continue;
        };
        let order_fen = model.order_fen(tier.min_spend_fen, &mut rng);
        let resend = rng.random::<f64>() < r.retry_same_key_share;
        let refund = rng.random::<f64>() < r.refund_full_share;
        let utility_probe = if rng.random::<f64>() < UTILITY_PROBE_SHARE {
            pick_merchant(plan, Category::Utility, &mut rng)
        } else {
            None
        };
        // The coupon code is unique across runs and campaigns, so a rerun against the
        // same server never replays an old sale by accident.
        let request_no = format!("p{}-{}", plan.tag, g.code);
        jobs.push(RedeemJob {
            coupon: i,
            merchant,
            order_fen,
            request_no,
            resend,
            refund,
            utility_probe,
        });
    }
    jobs
}
