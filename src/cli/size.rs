//! `size`: the pool-sizing formula of DESIGN.md §1 — app demand against PostgreSQL's limit.

use std::process::ExitCode;

use serde::Serialize;

use super::output::{self, OutputArgs};

/// Arguments of `bouncectl size`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example (5 app instances with 20 connections each, PostgreSQL max_connections = 100):\n  \
    bouncectl size --instances 5 --per-instance 20 --pg-max-connections 100\n\n\
    demand = instances × per-instance + headroom. When it fits under max_connections − admin-reserve,\n\
    the pooler may open all of it; otherwise max_db_connections = max_connections − admin-reserve and\n\
    default_pool_size = (max_connections − admin-reserve − headroom − reserve-pool) / instances."
)]
pub struct Args {
    /// Application instances (processes, pods) that connect through the pooler.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub instances: i64,
    /// Connections each instance opens (its driver's pool size).
    #[arg(long, value_name = "M", allow_hyphen_values = true)]
    pub per_instance: i64,
    /// Extra connections kept for migrations, cron jobs and consoles.
    #[arg(
        long,
        value_name = "H",
        default_value_t = 10,
        allow_hyphen_values = true
    )]
    pub headroom: i64,
    /// PostgreSQL's max_connections (omit to size for demand alone).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub pg_max_connections: Option<i64>,
    /// Connections kept free for superusers and admins.
    #[arg(
        long,
        value_name = "A",
        default_value_t = 10,
        allow_hyphen_values = true
    )]
    pub admin_reserve: i64,
    /// reserve_pool_size to suggest.
    #[arg(
        long,
        value_name = "R",
        default_value_t = 5,
        allow_hyphen_values = true
    )]
    pub reserve_pool: i64,
    /// Pooler replicas that share PostgreSQL's connections.
    #[arg(
        long,
        value_name = "K",
        default_value_t = 1,
        allow_hyphen_values = true
    )]
    pub poolers: i64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// The computed sizing, with DESIGN.md §1's JSON keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// instances × per-instance + headroom.
    pub demand: i64,
    /// Cap on server connections to the database (all poolers together).
    pub max_db_connections: i64,
    /// Suggested default_pool_size.
    pub default_pool_size: i64,
    /// Suggested reserve_pool_size.
    pub reserve_pool_size: i64,
    /// Whether the whole demand fits under PostgreSQL's limit.
    pub fits: bool,
    /// max_db_connections for each of the pooler replicas.
    pub per_pooler_max_db_connections: i64,
}

/// Validates the inputs and applies the formula; the error names the flag at fault.
pub fn plan(args: &Args) -> Result<Plan, String> {
    positive("--instances", args.instances)?;
    positive("--per-instance", args.per_instance)?;
    positive("--poolers", args.poolers)?;
    not_negative("--headroom", args.headroom)?;
    not_negative("--admin-reserve", args.admin_reserve)?;
    not_negative("--reserve-pool", args.reserve_pool)?;
    let overflow = || "the inputs are too large to multiply".to_owned();
    let demand = args
        .instances
        .checked_mul(args.per_instance)
        .and_then(|d| d.checked_add(args.headroom))
        .ok_or_else(overflow)?;
    let (max_db_connections, default_pool_size, fits) = match args.pg_max_connections {
        None => (demand, args.per_instance, true),
        Some(limit) => {
            positive("--pg-max-connections", limit)?;
            let usable = limit - args.admin_reserve;
            if usable <= 0 {
                return Err(format!(
                    "--pg-max-connections {limit} leaves nothing after --admin-reserve {}",
                    args.admin_reserve
                ));
            }
            if demand <= usable {
                (demand, args.per_instance, true)
            } else {
                let pool = (usable - args.headroom - args.reserve_pool) / args.instances;
                if pool < 1 {
                    return Err(format!(
                        "--pg-max-connections {limit} is too small for --instances {}: after \
                         --admin-reserve, --headroom and --reserve-pool no connection is left per instance",
                        args.instances
                    ));
                }
                (usable, pool, false)
            }
        }
    };
    Ok(Plan {
        demand,
        max_db_connections,
        default_pool_size,
        reserve_pool_size: args.reserve_pool,
        fits,
        per_pooler_max_db_connections: max_db_connections / args.poolers,
    })
}

fn positive(flag: &str, value: i64) -> Result<(), String> {
    if value < 1 {
        return Err(format!("{flag} must be at least 1, got {value}"));
    }
    Ok(())
}

fn not_negative(flag: &str, value: i64) -> Result<(), String> {
    if value < 0 {
        return Err(format!("{flag} must not be negative, got {value}"));
    }
    Ok(())
}

/// Runs `size`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = plan(&args).map_err(super::usage)?;
    if args.output.json {
        output::print_json(&plan)?;
    } else {
        output::print_text(&render(&args, &plan))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn render(args: &Args, plan: &Plan) -> String {
    let mut text = format!(
        "demand              = {} instances × {} connections + {} headroom = {}\n",
        args.instances, args.per_instance, args.headroom, plan.demand
    );
    match args.pg_max_connections {
        None => text
            .push_str("PostgreSQL limit    = not given (--pg-max-connections); sized for demand\n"),
        Some(limit) => text.push_str(&format!(
            "usable on server    = {limit} max_connections − {} admin reserve = {}\n",
            args.admin_reserve,
            limit - args.admin_reserve
        )),
    }
    if plan.fits {
        text.push_str(
            "verdict             = fits: every app connection can have a server connection\n",
        );
    } else {
        text.push_str(&format!(
            "verdict             = does not fit: pools capped, default_pool_size = ({} − {} − {} − {}) / {} = {}\n",
            args.pg_max_connections.unwrap_or_default(),
            args.admin_reserve,
            args.headroom,
            args.reserve_pool,
            args.instances,
            plan.default_pool_size
        ));
    }
    if args.poolers > 1 {
        text.push_str(&format!(
            "per pooler          = {} / {} poolers = {}\n",
            plan.max_db_connections, args.poolers, plan.per_pooler_max_db_connections
        ));
    }
    text.push_str(&format!(
        "\n[pgbouncer]\ndefault_pool_size = {}\nreserve_pool_size = {}\nmax_db_connections = {}\n",
        plan.default_pool_size, plan.reserve_pool_size, plan.per_pooler_max_db_connections
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(n: i64, m: i64, p: Option<i64>) -> Args {
        Args {
            instances: n,
            per_instance: m,
            headroom: 10,
            pg_max_connections: p,
            admin_reserve: 10,
            reserve_pool: 5,
            poolers: 1,
            output: OutputArgs::default(),
        }
    }

    #[test]
    fn worked_example_of_the_design() {
        let plan = plan(&args(5, 20, Some(100))).unwrap();
        assert_eq!(plan.demand, 110);
        assert_eq!(plan.max_db_connections, 90);
        assert_eq!(plan.default_pool_size, 15);
        assert!(!plan.fits);
    }

    #[test]
    fn demand_that_fits_is_passed_through() {
        let plan = plan(&args(2, 20, Some(100))).unwrap();
        assert_eq!(
            (plan.max_db_connections, plan.default_pool_size, plan.fits),
            (50, 20, true)
        );
        let plan = super::plan(&args(5, 20, None)).unwrap();
        assert_eq!((plan.max_db_connections, plan.default_pool_size), (110, 20));
    }

    #[test]
    fn poolers_split_the_cap() {
        let mut a = args(5, 20, Some(100));
        a.poolers = 4;
        assert_eq!(plan(&a).unwrap().per_pooler_max_db_connections, 22);
    }

    #[test]
    fn bad_inputs_name_the_flag() {
        for (a, flag) in [
            (args(0, 20, None), "--instances"),
            (args(5, -1, None), "--per-instance"),
            (args(5, 20, Some(0)), "--pg-max-connections"),
            (args(5, 20, Some(10)), "--admin-reserve"),
            (args(50, 20, Some(40)), "--pg-max-connections"),
        ] {
            let err = plan(&a).unwrap_err();
            assert!(err.contains(flag), "{err}");
        }
    }
}
