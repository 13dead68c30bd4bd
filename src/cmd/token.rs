//! `yunquan token`: mints a bearer token with a data directory's key. It reads
//! `DIR/token.key` (written by the engine on start) rather than the store, so it works
//! while a server holds the store open.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};
use yunquan_gateway::{mint, Role, TokenClaims};

/// Name of the token key file inside a data directory.
const TOKEN_KEY_FILE: &str = "token.key";
/// Bytes of the token key.
const TOKEN_KEY_BYTES: usize = 32;

/// The role to mint for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    /// Campaign and registry operator.
    Manager,
    /// A resident account.
    Resident,
    /// A point-of-sale terminal (needs --merchant).
    Terminal,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Manager => Role::Manager,
            RoleArg::Resident => Role::Resident,
            RoleArg::Terminal => Role::Terminal,
        }
    }
}

/// Arguments of `yunquan token`.
#[derive(Debug, clap::Args)]
pub struct Token {
    /// Data directory of the server the token is for.
    #[arg(long, env = "YUNQUAN_DATA")]
    data: PathBuf,
    /// Role of the token.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Manager name, resident account or terminal id.
    #[arg(long)]
    subject: String,
    /// The terminal's merchant (terminal tokens only).
    #[arg(long)]
    merchant: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl_s: u64,
}

impl Token {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::ensure!(self.ttl_s >= 1, "--ttl-s must be at least 1");
        let path = self.data.join(TOKEN_KEY_FILE);
        let key = match std::fs::read(&path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                "no token key in {dir}: start `yunquan serve --data {dir}` once first",
                dir = self.data.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        anyhow::ensure!(
            key.len() == TOKEN_KEY_BYTES,
            "{} holds {} bytes, not a {TOKEN_KEY_BYTES}-byte key; delete it and start the server once to rewrite it",
            path.display(),
            key.len()
        );
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let exp = i64::try_from(now_s.saturating_add(self.ttl_s)).unwrap_or(i64::MAX);
        let claims = TokenClaims {
            role: self.role.into(),
            sub: self.subject,
            mer: self.merchant,
            exp,
        };
        let problems = claims.problems();
        if !problems.is_empty() {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", cli_flag(&p.field), p.reason))
                .collect();
            anyhow::bail!("cannot mint this token: {}", list.join("; "));
        }
        println!("{}", mint(&key, &claims));
        Ok(ExitCode::SUCCESS)
    }
}

/// The flag a claims field comes from, so errors name what the user typed.
fn cli_flag(field: &str) -> &str {
    match field {
        "sub" => "--subject",
        "mer" => "--merchant",
        other => other,
    }
}
