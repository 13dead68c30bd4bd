//! Merchant categories and regions: what eligibility rules are written in.

use serde::{Deserialize, Serialize};

/// What a merchant sells. Coupons are funded per category; `Utility` (water,
/// electricity, gas, taxes and fees) is where coupons never apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Restaurants, canteens, food stalls.
    Catering,
    /// Shops and supermarkets.
    Retail,
    /// Online car retailers.
    AutoOnline,
    /// Cultural and tourism firms.
    CultureTourism,
    /// Farm-product sellers on the marketplace.
    AgriProducts,
    /// Housekeeping and home-service providers.
    Housekeeping,
    /// Billers of utilities, taxes and fees: never eligible for coupons.
    Utility,
}

impl Category {
    /// Every category, for reports.
    pub const ALL: [Category; 7] = [
        Category::Catering,
        Category::Retail,
        Category::AutoOnline,
        Category::CultureTourism,
        Category::AgriProducts,
        Category::Housekeeping,
        Category::Utility,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Catering => "catering",
            Category::Retail => "retail",
            Category::AutoOnline => "auto_online",
            Category::CultureTourism => "culture_tourism",
            Category::AgriProducts => "agri_products",
            Category::Housekeeping => "housekeeping",
            Category::Utility => "utility",
        }
    }
}

/// Longest region code, in bytes.
pub const REGION_BYTES_MAX: usize = 32;
/// Longest opaque id (account, merchant, terminal, request number, idempotency key), in bytes.
pub const ID_BYTES_MAX: usize = 64;

/// A region code: 1..=32 of `a-z 0-9 _`.
pub fn valid_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= REGION_BYTES_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// An opaque id: 1..=64 printable ASCII characters without spaces or '/'.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_BYTES_MAX && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_regions() {
        assert!(valid_region("guiyang"));
        assert!(!valid_region("Gui yang"));
        assert!(!valid_region(""));
        assert!(valid_id("m-000123"));
        assert!(!valid_id("a b"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id("名"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
