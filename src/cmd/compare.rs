//! `yunquan compare`: the same flash-sale claim workload against yunquan (over HTTP
//! and in process) and against the designs in use today (a Redis Lua script, a
//! PostgreSQL hot row), several interleaved runs each; prints a table and writes it as
//! JSON and SVG. Exit code 0 iff every target's every run was correct.

use super::loadgen::Secret;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use yunquan_loadgen::compare::workload::WorkloadSpec;
use yunquan_loadgen::compare::{self, CompareConfig, Targets};

/// Arguments of `yunquan compare`.
#[derive(Debug, clap::Args)]
pub struct Compare {
    /// yunquan server base URL, e.g. http://127.0.0.1:8080 (needs --token).
    #[arg(long)]
    yunquan_http: Option<String>,
    /// Manager bearer token of that server (see `yunquan token --role manager`).
    #[arg(long, env = "YUNQUAN_TOKEN", hide_env_values = true)]
    token: Option<Secret>,
    /// Also run the yunquan engine in this process (no HTTP) on a temporary directory.
    #[arg(long)]
    yunquan_inprocess: bool,
    /// Shards of the in-process engine (default: one per core, as `serve`).
    #[arg(long)]
    inprocess_shards: Option<u32>,
    /// Redis URL, e.g. redis://127.0.0.1:6379; repeat for several servers (each is
    /// labelled from its own persistence settings).
    #[arg(long)]
    redis: Vec<String>,
    /// PostgreSQL URL, e.g. postgres://bench@127.0.0.1:5432/bench.
    #[arg(long)]
    postgres: Option<String>,
    /// Distinct persons; each grabs once, some twice.
    #[arg(long, default_value_t = 50_000)]
    persons: u64,
    /// Units of stock per round (less than persons, so rounds sell out).
    #[arg(long, default_value_t = 40_000)]
    stock: u64,
    /// Second grabs, as a fraction of persons (the limit must refuse them).
    #[arg(long, default_value_t = 0.1)]
    repeat_fraction: f64,
    /// Concurrent clients per target, one connection and one request in flight each.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Peak (closed-loop) runs per target, interleaved.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// A peak run starts no claim after this many seconds (it is then flagged).
    #[arg(long, default_value_t = 120.0)]
    run_duration_s_max: f64,
    /// Offered loads of yunquan-http's latency curve, as comma-separated fractions of its
    /// median peak; empty skips the curve.
    #[arg(long, default_value = "0.1,0.25,0.5,0.75,0.9")]
    sweep: String,
    /// Length of each paced run of the curve, in seconds.
    #[arg(long, default_value_t = 3.0)]
    sweep_duration_s: f64,
    /// Seed of the order of claims.
    #[arg(long, default_value_t = yunquan_loadgen::SEED_DEFAULT)]
    seed: u64,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench-compare.json")]
    json: PathBuf,
    /// Where to write the SVG plot.
    #[arg(long, default_value = "target/bench-compare.svg")]
    svg: PathBuf,
}

/// `0.1,0.5` -> [0.1, 0.5]; an empty text is no fraction at all.
fn parse_fractions(text: &str) -> anyhow::Result<Vec<f64>> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let f: f64 = t
                .parse()
                .with_context(|| format!("--sweep: {t:?} is not a number"))?;
            anyhow::ensure!(
                f.is_finite() && f > 0.0,
                "--sweep: {t} must be a fraction of the peak above 0 (e.g. 0.5)"
            );
            Ok(f)
        })
        .collect()
}

impl Compare {
    /// Runs it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let yunquan_http = match (self.yunquan_http, self.token) {
            (Some(url), Some(token)) => Some((url, token.0)),
            (Some(_), None) => {
                anyhow::bail!("--yunquan-http needs a manager token (--token or YUNQUAN_TOKEN)")
            }
            (None, _) => None,
        };
        let shards = match self.inprocess_shards {
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1)),
        };
        let sweep = parse_fractions(&self.sweep)?;
        anyhow::ensure!(
            self.stock <= self.persons,
            "--stock ({}) above --persons ({}) would never sell out",
            self.stock,
            self.persons
        );
        let config = CompareConfig {
            workload: WorkloadSpec {
                persons: self.persons,
                stock: self.stock,
                repeat_fraction: self.repeat_fraction,
                seed: self.seed,
            },
            clients: self.clients,
            reps: self.reps,
            run_duration_s_max: self.run_duration_s_max,
            sweep_fractions: sweep,
            sweep_duration_s: self.sweep_duration_s,
            targets: Targets {
                yunquan_http,
                yunquan_inprocess: self.yunquan_inprocess.then_some((None, shards)),
                redis: self.redis,
                postgres: self.postgres,
            },
        };
        let report = compare::run(config).await?;
        for path in [&self.json, &self.svg] {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        let json = serde_json::to_vec_pretty(&report).context("encoding the report")?;
        std::fs::write(&self.json, json)
            .with_context(|| format!("writing {}", self.json.display()))?;
        std::fs::write(&self.svg, compare::svg::render(&report))
            .with_context(|| format!("writing {}", self.svg.display()))?;
        println!("{}", compare::report::table(&report));
        println!(
            "written: {} and {}",
            self.json.display(),
            self.svg.display()
        );
        Ok(if report.rows.iter().all(|r| r.correct) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_fractions;

    #[test]
    fn sweep_lists_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_fractions("0.1, 0.5,0.9").unwrap(),
            vec![0.1, 0.5, 0.9]
        );
        assert!(parse_fractions("").unwrap().is_empty());
        assert!(parse_fractions("0.5,x").is_err());
        assert!(parse_fractions("0").is_err());
        assert!(parse_fractions("-1").is_err());
    }
}
