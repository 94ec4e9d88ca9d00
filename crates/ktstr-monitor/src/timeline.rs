//! A per-CPU timeline of a recording as SVG: one row per CPU, time across,
//! each cell coloured by the CPU's `nr_running` with a stripe whose colour
//! follows its current task, findings outlined in red and the moment
//! sched_ext stopped being enabled (the scheduler kicked out or exited)
//! as a dashed line. Hovering a cell shows its numbers.

use std::fmt::Write;
use std::time::Duration;

use crate::{Finding, Sample};

const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const PLOT_WIDTH: f64 = 900.0;
const ROW: f64 = 22.0;
/// Height of the current-task stripe at the bottom of each cell.
const STRIPE: f64 = 5.0;
const LEGEND: f64 = 50.0;

/// Fill for a CPU with `n` runnable tasks: grey when idle, then green,
/// yellow, orange, red as the queue grows.
fn load_colour(n: u32) -> &'static str {
    match n {
        0 => "#eeeeee",
        1 => "#a6d96a",
        2 => "#ffffbf",
        3 | 4 => "#fdae61",
        _ => "#d7191c",
    }
}

/// A stable colour per task (by pid), so a task that keeps a CPU shows as
/// one long stripe; the idle task is white.
fn task_colour(pid: i32) -> String {
    if pid == 0 {
        return "#ffffff".into();
    }
    let hue = (pid as u32).wrapping_mul(2_654_435_761) % 360;
    format!("hsl({hue},60%,45%)")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where each sample's cell ends: at the next sample, the last one a
/// median period after its start.
fn cell_ends(samples: &[Sample]) -> Vec<Duration> {
    let mut gaps: Vec<Duration> = samples.windows(2).map(|w| w[1].at - w[0].at).collect();
    gaps.sort();
    let period = gaps
        .get(gaps.len() / 2)
        .copied()
        .unwrap_or(crate::DEFAULT_PERIOD);
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| samples.get(i + 1).map_or(s.at + period, |n| n.at))
        .collect()
}

/// Renders `samples` and `findings` (from [`crate::detect`]) for `title`.
pub fn render_svg(title: &str, samples: &[Sample], findings: &[Finding]) -> String {
    let cpus = samples.iter().map(|s| s.cpus.len()).max().unwrap_or(0);
    let ends = cell_ends(samples);
    let t0 = samples.first().map_or(Duration::ZERO, |s| s.at);
    let span = ends
        .last()
        .map_or(1e-3, |e| (*e - t0).as_secs_f64().max(1e-3));
    let x = |t: Duration| LEFT + t.saturating_sub(t0).as_secs_f64() / span * PLOT_WIDTH;
    let row_y = |cpu: usize| TOP + cpu as f64 * ROW;
    let height = TOP + cpus as f64 * ROW + LEGEND;
    let width = LEFT + PLOT_WIDTH + 20.0;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for cpu in 0..cpus {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">cpu {cpu}</text>"#,
            LEFT - 6.0,
            row_y(cpu) + ROW * 0.65
        );
    }
    for (s, end) in samples.iter().zip(&ends) {
        let (x0, x1) = (x(s.at), x(*end));
        for (cpu, c) in s.cpus.iter().enumerate() {
            let y = row_y(cpu);
            let w = (x1 - x0).max(0.5);
            let Some(c) = c else {
                let _ = writeln!(
                    out,
                    r##"<rect x="{x0:.1}" y="{y}" width="{w:.1}" height="{}" fill="#ffffff" stroke="#cccccc"><title>cpu {cpu} +{:.0} ms: unreadable (torn)</title></rect>"##,
                    ROW - 2.0,
                    s.at.as_secs_f64() * 1e3
                );
                continue;
            };
            let waiting = c.waiting.as_ref().map_or(String::new(), |w| {
                format!(
                    ", waiting {}[{}] since jiffy {}",
                    escape(&w.task.comm),
                    w.task.pid,
                    w.since_jiffies
                )
            });
            let _ = writeln!(
                out,
                r#"<rect x="{x0:.1}" y="{y}" width="{w:.1}" height="{}" fill="{}"><title>cpu {cpu} +{:.0} ms: nr_running {}, current {}[{}]{waiting}</title></rect>"#,
                ROW - 2.0,
                load_colour(c.nr_running),
                s.at.as_secs_f64() * 1e3,
                c.nr_running,
                escape(&c.curr.comm),
                c.curr.pid,
            );
            let _ = writeln!(
                out,
                r#"<rect x="{x0:.1}" y="{}" width="{w:.1}" height="{STRIPE}" fill="{}"/>"#,
                y + ROW - 2.0 - STRIPE,
                task_colour(c.curr.pid)
            );
        }
    }
    write_axis(&mut out, span, cpus, &x, t0);
    for f in findings {
        write_finding(&mut out, f, samples, &ends, cpus, &x, &row_y);
    }
    for w in samples.windows(2) {
        if w[0].scx.enabled() && !w[1].scx.enabled() {
            let xk = x(w[1].at);
            let _ = writeln!(
                out,
                r##"<line x1="{xk:.1}" y1="{}" x2="{xk:.1}" y2="{}" stroke="#000000" stroke-dasharray="4 3"/><text x="{xk:.1}" y="{}" font-size="10">sched_ext disabled ({})</text>"##,
                TOP - 4.0,
                row_y(cpus),
                TOP - 6.0,
                escape(w[1].scx.state.as_deref().unwrap_or("unknown state"))
            );
        }
    }
    write_legend(&mut out, row_y(cpus) + 16.0);
    out.push_str("</svg>\n");
    out
}

/// Ticks every second (every 10 s past a minute) under the rows.
fn write_axis(out: &mut String, span: f64, cpus: usize, x: &dyn Fn(Duration) -> f64, t0: Duration) {
    let step = if span > 60.0 { 10 } else { 1 };
    let y = TOP + cpus as f64 * ROW;
    let mut s = 0;
    while f64::from(s) <= span {
        let xs = x(t0 + Duration::from_secs(u64::from(s as u32)));
        let _ = writeln!(
            out,
            r##"<line x1="{xs:.1}" y1="{y}" x2="{xs:.1}" y2="{}" stroke="#666666"/><text x="{xs:.1}" y="{}" font-size="10" text-anchor="middle">{s}s</text>"##,
            y + 4.0,
            y + 14.0
        );
        s += step;
    }
}

fn write_finding(
    out: &mut String,
    f: &Finding,
    samples: &[Sample],
    ends: &[Duration],
    cpus: usize,
    x: &dyn Fn(Duration) -> f64,
    row_y: &dyn Fn(usize) -> f64,
) {
    let (rows, from, n, label) = match f {
        Finding::Stall {
            cpu,
            kind,
            from,
            samples,
            ..
        } => (*cpu..*cpu + 1, *from, *samples, format!("{kind:?}")),
        Finding::DeepLocalDsq {
            cpu, from, samples, ..
        } => (*cpu..*cpu + 1, *from, *samples, "DeepLocalDsq".into()),
        Finding::Imbalance { from, samples, .. } => (0..cpus, *from, *samples, "Imbalance".into()),
    };
    let Some(first) = samples.iter().position(|s| s.at == from) else {
        return;
    };
    let last = (first + n.max(1) - 1).min(ends.len().saturating_sub(1));
    let (x0, x1) = (x(from), x(ends[last]));
    let (y0, y1) = (row_y(rows.start), row_y(rows.end));
    let _ = writeln!(
        out,
        r##"<rect x="{x0:.1}" y="{y0}" width="{:.1}" height="{:.1}" fill="none" stroke="#d00000" stroke-width="2"><title>{}</title></rect><text x="{x0:.1}" y="{:.1}" font-size="10" fill="#d00000">{label}</text>"##,
        (x1 - x0).max(1.0),
        y1 - y0 - 2.0,
        escape(&format!("{f:?}")),
        y0 + 11.0
    );
}

fn write_legend(out: &mut String, y: f64) {
    let mut xl = LEFT;
    let _ = writeln!(out, r#"<text x="{xl}" y="{}">nr_running:</text>"#, y + 11.0);
    xl += 75.0;
    for (n, label) in [(0, "0"), (1, "1"), (2, "2"), (3, "3-4"), (5, "5+")] {
        let _ = writeln!(
            out,
            r##"<rect x="{xl}" y="{y}" width="14" height="14" fill="{}" stroke="#999999"/><text x="{}" y="{}">{label}</text>"##,
            load_colour(n),
            xl + 18.0,
            y + 11.0
        );
        xl += 50.0;
    }
    let _ = writeln!(
        out,
        r##"<text x="{xl}" y="{}">stripe: current task (white: idle); red box: finding; dashed: sched_ext disabled</text>"##,
        y + 11.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CpuSample, CurrentTask, ScxStatus, StallKind};

    fn sample(ms: u64, nr: u32, enabled: bool) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            jiffies: Some(ms),
            cpus: vec![
                Some(CpuSample {
                    nr_running: nr,
                    scx_nr_running: Some(nr),
                    clock_ns: ms,
                    local_dsq_depth: Some(0),
                    curr: CurrentTask {
                        pid: 0,
                        comm: "swapper/0".into(),
                    },
                    waiting: None,
                }),
                None,
            ],
            scx: ScxStatus {
                state: Some(
                    if enabled {
                        "SCX_OPS_ENABLED"
                    } else {
                        "SCX_OPS_DISABLED"
                    }
                    .into(),
                ),
                ops_name: None,
            },
            torn: 1,
        }
    }

    #[test]
    fn the_svg_has_a_row_per_cpu_the_finding_and_the_kick() {
        let samples: Vec<Sample> = (0..5).map(|i| sample(i * 100, 2, i < 4)).collect();
        let stall = Finding::Stall {
            cpu: 0,
            kind: StallKind::IdleWhileRunnable,
            from: Duration::from_millis(100),
            samples: 3,
            nr_running: 2,
            curr: CurrentTask {
                pid: 0,
                comm: "<swapper>".into(),
            },
            waiting: None,
        };
        let svg = render_svg("t & u", &samples, &[stall]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">cpu 0<") && svg.contains(">cpu 1<"), "{svg}");
        assert!(svg.contains("t &amp; u"));
        assert!(svg.contains("IdleWhileRunnable") && svg.contains("&lt;swapper&gt;"));
        assert!(svg.contains("sched_ext disabled (SCX_OPS_DISABLED)"));
        assert_eq!(svg.matches("unreadable (torn)").count(), 5);
        // An empty recording is still a valid picture.
        assert!(render_svg("empty", &[], &[]).ends_with("</svg>\n"));
    }
}
