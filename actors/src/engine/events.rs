//! Journal events. Every state change is one of these, appended durably before any
//! reply; replaying them in order rebuilds the state exactly. Encoded with postcard.

use crate::api::CampaignStatus;
use crate::domain::{Campaign, Category};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The journal of campaigns and merchants (shard journals are 0..shards).
pub const CONTROL_JOURNAL: u32 = u32::MAX;

/// Events of a shard's journal: residents' wallets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardEvent {
    /// An account of a natural person was registered.
    Registered {
        /// App account id.
        account: String,
        /// Person routing key.
        route: u64,
        /// Second half of the person hash.
        check: u64,
        /// Home region.
        region: String,
    },
    /// A coupon was granted.
    Granted {
        /// Owner.
        route: u64,
        /// Serial in the owner's wallet (1-based, dense).
        serial: u32,
        /// Account that claimed.
        account: String,
        /// Campaign id.
        campaign: String,
        /// Round index.
        round: u32,
        /// Tier index.
        tier: u32,
        /// Claim instant.
        at_ms: i64,
        /// First redeemable instant.
        valid_from_ms: i64,
        /// Last redeemable instant.
        valid_until_ms: i64,
        /// The claim's idempotency key, so replays survive restarts.
        idempotency_key: Option<String>,
    },
    /// A coupon was redeemed.
    Redeemed {
        /// Owner.
        route: u64,
        /// Coupon serial.
        serial: u32,
        /// Redemption number of this coupon (1-based).
        n: u32,
        /// Merchant.
        merchant: String,
        /// Terminal.
        terminal: String,
        /// POS request number.
        request_no: String,
        /// Order in fen.
        order_fen: u64,
        /// Discount in fen.
        discount_fen: u64,
        /// Merchant category at the time.
        category: Category,
        /// Merchant region at the time.
        region: String,
        /// Instant.
        at_ms: i64,
    },
    /// A redemption was reversed.
    Reversed {
        /// Owner.
        route: u64,
        /// Coupon serial.
        serial: u32,
        /// Redemption number.
        n: u32,
        /// Instant.
        at_ms: i64,
        /// Whether the coupon came back (policy and validity).
        restored: bool,
    },
}

/// Events of the control journal: read-mostly registries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlEvent {
    /// A campaign was defined.
    CampaignCreated {
        /// The validated definition.
        campaign: Box<Campaign>,
        /// Creation instant.
        at_ms: i64,
    },
    /// A campaign changed status.
    StatusChanged {
        /// Campaign id.
        id: String,
        /// New status.
        status: CampaignStatus,
        /// Instant.
        at_ms: i64,
    },
    /// A merchant was registered.
    MerchantRegistered {
        /// Merchant id.
        id: String,
        /// Name.
        name: String,
        /// Category.
        category: Category,
        /// Region.
        region: String,
        /// Terminals.
        terminals: Vec<String>,
    },
}

/// Encodes an event for the journal.
pub fn encode<E: Serialize>(e: &E) -> Vec<u8> {
    // postcard into a Vec cannot fail for these types (no maps with non-string keys, no floats NaN issues).
    postcard::to_allocvec(e).unwrap_or_default()
}

/// Appends an event's encoding to `buf`.
pub fn encode_into<E: Serialize>(e: &E, buf: &mut Vec<u8>) {
    let taken = std::mem::take(buf);
    *buf = postcard::to_extend(e, taken).unwrap_or_default();
}

/// Decodes a journal record.
pub fn decode<E: DeserializeOwned>(bytes: &[u8]) -> Result<E, postcard::Error> {
    postcard::from_bytes(bytes)
}
