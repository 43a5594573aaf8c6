//! Prints `run.sh`'s results as two tables: the median of every row with
//! the ratios to tokio, then the min–max over the rounds.
//!
//! The input (argv[1]) has one measurement a line, tab-separated:
//! `benchmark<TAB>contender<TAB>value`, where the contender is `tarn`,
//! `tokio` or `smol` and a benchmark appears once per round per contender.
//! Rows are printed in the order they first appear; a contender with no
//! measurement in a row shows `—` (tarn-only rows such as the selector
//! backends have no tokio or smol equivalent).
//!
//! A line `#base<TAB>benchmark<TAB>base benchmark` gives a row a base: its
//! `tarn/base` column is then its tarn median divided by the base row's
//! tarn median (tarn under tokio's executor against tarn's own, the poll
//! backend against epoll, ...). Rows without a base show `—` there.
//!
//! A contender with no measurement in any row (smol in `hyper.sh`'s
//! results) gets no column, nor does its ratio; nor does `tarn/base` when
//! no row has a base.
//!
//! ```text
//! report results.tsv
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

/// The contenders, in column order.
const CONTENDERS: [&str; 3] = ["tarn", "tokio", "smol"];

/// What a missing figure prints as.
const NONE: &str = "—";

/// The measurements of one benchmark, per contender.
#[derive(Default)]
struct Row {
    values: [Vec<f64>; 3],
    /// The benchmark whose tarn median this row's is divided by.
    base: Option<String>,
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// A figure with as many decimals as its size needs to be read.
fn fmt(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{x:.2}")
    } else {
        // Two significant digits: 0.00046 epoll_ctl per message is not 0.
        let decimals = 1 - a.log10().floor() as i32;
        format!("{x:.*}", decimals.clamp(2, 9) as usize)
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => NONE.into(),
    }
}

/// Prints `rows` as a left-aligned first column and right-aligned others.
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c == 0 {
                line += &format!("{cell:<w$}", w = width[0]);
            } else {
                line += &format!("  {cell:>w$}", w = width[c]);
            }
        }
        println!("{}", line.trim_end());
        if i == 0 {
            println!(
                "{}",
                "-".repeat(width.iter().sum::<usize>() + 2 * (cols - 1))
            );
        }
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: report RESULTS.tsv");
        return ExitCode::FAILURE;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("report: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut order = Vec::new();
    let mut rows: HashMap<String, Row> = HashMap::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        if let ["#base", bench, base] = fields[..] {
            if !rows.contains_key(bench) {
                order.push(bench.to_string());
            }
            rows.entry(bench.to_string()).or_default().base = Some(base.to_string());
            continue;
        }
        let parsed = match fields[..] {
            [bench, who, value] => CONTENDERS
                .iter()
                .position(|c| *c == who)
                .zip(value.parse::<f64>().ok())
                .map(|(i, v)| (bench, i, v)),
            _ => None,
        };
        let Some((bench, i, value)) = parsed else {
            eprintln!(
                "report: {path}:{}: not `benchmark<TAB>contender<TAB>number` \
                 nor `#base<TAB>benchmark<TAB>benchmark`",
                n + 1
            );
            return ExitCode::FAILURE;
        };
        if !rows.contains_key(bench) {
            order.push(bench.to_string());
        }
        rows.entry(bench.to_string()).or_default().values[i].push(value);
    }

    // The contenders with a figure somewhere, and whether a row has a base.
    let present: Vec<bool> = (0..CONTENDERS.len())
        .map(|i| rows.values().any(|r| !r.values[i].is_empty()))
        .collect();
    let based = rows.values().any(|r| r.base.is_some());
    let (tarn, tokio, smol) = (present[0], present[1], present[2]);
    let shown = |values: &[Vec<f64>]| -> Vec<Vec<f64>> {
        values
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(v, _)| v.clone())
            .collect()
    };

    let names: Vec<String> = CONTENDERS
        .iter()
        .zip(&present)
        .filter(|(_, p)| **p)
        .map(|(c, _)| c.to_string())
        .collect();
    let mut head = vec!["benchmark".to_string()];
    head.extend(names.iter().cloned());
    for (show, name) in [
        (tarn && tokio, "tarn/tokio"),
        (smol && tokio, "smol/tokio"),
        (based, "tarn/base"),
    ] {
        if show {
            head.push(name.into());
        }
    }
    let mut medians = vec![head];
    let mut ranges = vec![vec!["benchmark (min–max)".to_string()]];
    ranges[0].extend(names);
    for bench in &order {
        let row = &rows[bench];
        let m: Vec<Option<f64>> = row.values.iter().map(|v| median(v)).collect();
        let mut line = vec![bench.clone()];
        line.extend(
            shown(&row.values)
                .iter()
                .map(|v| median(v).map_or(NONE.into(), fmt)),
        );
        if tarn && tokio {
            line.push(ratio(m[0], m[1]));
        }
        if smol && tokio {
            line.push(ratio(m[2], m[1]));
        }
        if based {
            let base = row.base.as_ref().and_then(|b| rows.get(b));
            line.push(ratio(m[0], base.and_then(|b| median(&b.values[0]))));
        }
        medians.push(line);

        let mut line = vec![bench.clone()];
        for v in shown(&row.values) {
            let lo = v.iter().copied().reduce(f64::min);
            let hi = v.iter().copied().reduce(f64::max);
            line.push(match (lo, hi) {
                (Some(lo), Some(hi)) => format!("{}–{}", fmt(lo), fmt(hi)),
                _ => NONE.into(),
            });
        }
        ranges.push(line);
    }
    print_table(&medians);
    println!();
    print_table(&ranges);
    ExitCode::SUCCESS
}
