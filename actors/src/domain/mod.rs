//! Domain types: they parse, they never panic, and they carry their own limits.

pub mod campaign;
pub mod code;
pub mod identity;
pub mod merchant;
pub mod money;
pub mod window;

pub use campaign::{
    Campaign, CampaignSpec, Discount, FieldError, Limits, Priced, RefundPolicy, RoundState, Tier,
};
pub use code::{CodeError, CouponCode};
pub use identity::{IdentityError, IdentityNumber, PersonKey};
pub use merchant::{valid_id, valid_region, Category};
pub use money::Fen;
pub use window::Validity;
