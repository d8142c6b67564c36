//! ninepd with its sandbox (the default: Landlock, seccomp, capabilities) against the same
//! build with `--sandbox off`, over a unix socket: what the sandbox costs. The two servers
//! take turns in each round, in alternating order, so that the machine's drift between
//! rounds falls on both.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::{
    Figures, Server, figures, lower_is_better, median, run_load, spawn, stream_with_cpu,
    wait_for_socket,
};

/// Measurements by (sandboxed or not, metric name).
type Results = std::collections::BTreeMap<(bool, String), Figures>;

/// Measures both servers `rounds` times and prints their table.
pub fn compare(bins: &Path, dir: &Path, sockets: &Path, rounds: usize) -> Result<()> {
    let load = bins.join("ninep-load");
    let mut servers: Vec<(bool, String, Server)> = Vec::new();
    for sandboxed in [true, false] {
        let socket = sockets.join(format!("ninepd-sandbox-{sandboxed}.sock"));
        let mut cmd = Command::new(bins.join("ninepd"));
        cmd.arg(dir)
            .args(["--log-level", "warn", "--no-root-squash", "--listen"])
            .arg(format!("unix:{}", socket.display()));
        if !sandboxed {
            cmd.args(["--sandbox", "off"]);
        }
        let server = spawn(&mut cmd)?;
        wait_for_socket(&socket)?;
        servers.push((sandboxed, format!("unix:{}", socket.display()), server));
    }
    for (_, _, server) in &mut servers {
        server.check_running()?;
    }
    let mut results = Results::new();
    for round in 0..rounds {
        eprintln!("xtask: bench 9p sandbox round {}/{rounds}", round + 1);
        let mut order: Vec<&(bool, String, Server)> = servers.iter().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for (sandboxed, connect, server) in order {
            let (stream, cpu) = stream_with_cpu(&load, connect, "", server.0.id())?;
            let mut all = figures(&stream);
            for (phase, seconds) in cpu {
                all.push((
                    format!("{phase}-server-cpu"),
                    seconds * 1e3,
                    "ms/GiB".into(),
                ));
            }
            for test in [
                &["--test", "getattr"][..],
                &["--test", "pipelined", "--ops", "100000"],
            ] {
                all.extend(run_load(&load, connect, "", test)?);
            }
            for (name, value, unit) in all {
                add_one(&mut results, (*sandboxed, name), value, &unit);
            }
        }
    }
    print(&results);
    Ok(())
}

fn add_one(results: &mut Results, key: (bool, String), value: f64, unit: &str) {
    let figures = results.entry(key).or_default();
    figures.values.push(value);
    figures.unit = unit.to_string();
}

fn print(results: &Results) {
    println!("\n| unix socket | ninepd (sandbox on) | ninepd --sandbox off | on / off (range) |");
    println!("|---|---|---|---|");
    for ((sandboxed, metric), on) in results {
        let Some(off) = results.get(&(false, metric.clone())) else {
            continue;
        };
        if !sandboxed || on.unit == "bytes" {
            continue;
        }
        let lower = lower_is_better(&on.unit);
        // > 1: the sandboxed server did better (for latency and CPU: off / on).
        let ratios: Vec<f64> = on
            .values
            .iter()
            .zip(&off.values)
            .map(|(n, f)| if lower { f / n } else { n / f })
            .collect();
        let (lo, hi) = ratios.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
        println!(
            "| {metric} | {:.1} {unit} | {:.1} {unit} | {:.3}x ({lo:.3}-{hi:.3}) |",
            median(&on.values),
            median(&off.values),
            median(&ratios),
            unit = on.unit,
        );
    }
    println!(
        "\n(medians over the rounds; ratios > 1 favour the sandboxed server, latency and CPU \
         ratios are off / on.)"
    );
}
