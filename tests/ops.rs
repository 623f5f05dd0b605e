//! The operator's tools (issue 21): the gauges `/metrics` reads from the database at each
//! scrape, on both backends and seen from another instance of the same database; and the
//! files built on the metrics — `ops/prometheus/paygate.rules.yml`, its promtool tests,
//! `ops/grafana/paygate.json` — which may name only metrics and labels of `src/telemetry.rs`'s
//! catalogue, so renaming a metric or a label fails here instead of silencing an alert.
//! (`.ci/run` also runs `promtool check rules` and `promtool test rules`.)

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{FINANCE_KEY, TestApp};
use paygate::clock::Clock;
use paygate::jobs::Job;
use paygate::store::jobs::{self as lease, Outcome};
use serde_json::{Value, json};

fn repo_file(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The catalogue and the files that use it.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

#[derive(Debug)]
struct Metric {
    kind: Kind,
    labels: BTreeSet<String>,
}

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// The table at the top of src/telemetry.rs: each metric, its type and its label names.
fn catalogue() -> BTreeMap<String, Metric> {
    let mut out = BTreeMap::new();
    for line in repo_file("src/telemetry.rs").lines() {
        let Some(row) = line.strip_prefix("//! | `paygate_") else {
            continue;
        };
        let row = format!("`paygate_{row}");
        let (first, rest) = row
            .split_once(" | ")
            .expect("a catalogue row has two cells");
        let kind = if first.contains("(summary)") {
            Kind::Summary
        } else if first.contains("(gauge") {
            Kind::Gauge
        } else {
            Kind::Counter
        };
        // The labels: the cell without its parenthesised value lists, up to its first colon.
        let mut cell = String::new();
        let mut depth = 0;
        for c in rest.trim_end_matches('|').chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => cell.push(c),
                _ => {}
            }
        }
        let names = cell.split(':').next().unwrap_or_default();
        let labels: BTreeSet<String> = names
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(str::to_owned)
            .collect();
        for name in first.split('`').filter(|t| t.starts_with("paygate_")) {
            out.insert(
                name.to_owned(),
                Metric {
                    kind,
                    labels: labels.clone(),
                },
            );
        }
    }
    assert!(out.len() > 10, "the catalogue was not found: {out:?}");
    out
}

/// Every `paygate_…` name in `text`, with the byte just after it.
fn metric_tokens(text: &str) -> Vec<(String, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = text[at..].find("paygate_") {
        let start = at + found;
        let word_before =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start + "paygate_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if !word_before {
            out.push((text[start..end].to_owned(), end));
        }
        at = end;
    }
    out
}

/// The catalogue's metric a series name belongs to (a summary's `_sum` and `_count` too).
fn metric_of<'c>(
    catalogue: &'c BTreeMap<String, Metric>,
    name: &str,
) -> Option<(&'c str, &'c Metric)> {
    if let Some((k, m)) = catalogue.get_key_value(name) {
        return Some((k, m));
    }
    let base = name
        .strip_suffix("_sum")
        .or_else(|| name.strip_suffix("_count"))?;
    catalogue
        .get_key_value(base)
        .filter(|(_, m)| m.kind == Kind::Summary)
        .map(|(k, m)| (k.as_str(), m))
}

/// The problems of one PromQL expression (or one series of a test file): names not in the
/// catalogue, selector labels a metric does not have, grouping labels none of its metrics has.
fn check_expr(catalogue: &BTreeMap<String, Metric>, expr: &str, wher: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut labels_here: BTreeSet<String> = TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect();
    for (name, end) in metric_tokens(expr) {
        let Some((_, metric)) = metric_of(catalogue, &name) else {
            problems.push(format!(
                "{wher}: `{name}` is not in src/telemetry.rs's catalogue"
            ));
            continue;
        };
        labels_here.extend(metric.labels.iter().cloned());
        if expr[end..].starts_with('{') {
            let close = expr[end..].find('}').expect("a closed selector") + end;
            for matcher in expr[end + 1..close]
                .split(',')
                .filter(|m| !m.trim().is_empty())
            {
                let key = matcher.split(['=', '!']).next().unwrap_or_default().trim();
                let allowed = metric.labels.contains(key)
                    || TARGET_LABELS.contains(&key)
                    || (metric.kind == Kind::Summary && key == "quantile");
                if !allowed {
                    problems.push(format!("{wher}: `{name}` has no label `{key}`"));
                }
            }
        }
    }
    for keyword in ["by", "without", "on", "ignoring"] {
        let mut at = 0;
        while let Some(found) = expr[at..].find(keyword) {
            let start = at + found;
            at = start + keyword.len();
            let before_ok = start == 0
                || !expr.as_bytes()[start - 1].is_ascii_alphanumeric()
                    && expr.as_bytes()[start - 1] != b'_';
            let rest = expr[at..].trim_start();
            if !before_ok || !rest.starts_with('(') {
                continue;
            }
            let list = &rest[1..rest.find(')').expect("a closed label list")];
            for label in list.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                if !labels_here.contains(label) {
                    problems.push(format!(
                        "{wher}: `{keyword} ({label})` is a label of none of its metrics"
                    ));
                }
            }
        }
    }
    problems
}

/// The `expr:` of every rule in a rules file (inline, or a `|` block).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let rest = rest.trim();
        if rest == "|" || rest == ">" || rest == "|-" || rest == ">-" {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            out.push(block.join("\n"));
        } else {
            out.push(rest.trim_matches(['"', '\'']).to_owned());
        }
    }
    out
}

#[test]
fn the_catalogue_lists_every_metric_the_code_emits_and_nothing_else() {
    let source = repo_file("src/telemetry.rs");
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let emitted: BTreeSet<String> = metric_tokens(&code)
        .into_iter()
        .filter(|(_, end)| code.as_bytes().get(*end) == Some(&b'"'))
        .map(|(name, _)| name)
        .collect();
    let listed: BTreeSet<String> = catalogue().into_keys().collect();
    assert_eq!(
        emitted, listed,
        "src/telemetry.rs: the code's metrics and its catalogue differ"
    );
    // And telemetry.rs is the only place that names a metric.
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("telemetry.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                // The console's cookie names (`paygate_console…`) are the one other kind of
                // `"paygate_` literal: anything else so named is a metric emitted elsewhere.
                let text = text
                    .replace("\"paygate_console\"", "")
                    .replace("\"paygate_console_form\"", "");
                for forbidden in [
                    "metrics::counter!",
                    "metrics::gauge!",
                    "metrics::histogram!",
                    "\"paygate_",
                ] {
                    assert!(
                        !text.contains(forbidden),
                        "{}: `{forbidden}` outside src/telemetry.rs",
                        path.display()
                    );
                }
            }
        }
    }
}

#[test]
fn the_alert_rules_and_their_tests_name_only_catalogued_metrics_and_labels() {
    let catalogue = catalogue();
    let rules = repo_file("ops/prometheus/paygate.rules.yml");
    let exprs = rule_exprs(&rules);
    assert!(exprs.len() >= 18, "{exprs:?}");
    let mut problems: Vec<String> = exprs
        .iter()
        .flat_map(|e| check_expr(&catalogue, e, "paygate.rules.yml"))
        .collect();
    // Names in descriptions and comments, too.
    for (name, _) in metric_tokens(&rules) {
        if metric_of(&catalogue, &name).is_none() {
            problems.push(format!("paygate.rules.yml mentions `{name}`"));
        }
    }
    // The series the promtool tests feed are series /metrics could expose.
    let tests = repo_file("ops/prometheus/paygate.rules.test.yml");
    let mut fed = 0;
    for line in tests.lines() {
        if let Some(series) = line.trim_start().strip_prefix("- series: ") {
            let series = series.trim_matches(['"', '\'']);
            if series.starts_with("paygate_") {
                fed += 1;
                problems.extend(check_expr(&catalogue, series, "paygate.rules.test.yml"));
            }
        }
    }
    assert!(fed > 20, "{fed} series fed");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_has_a_for_a_severity_words_for_the_on_call_and_a_runbook_section() {
    let rules = repo_file("ops/prometheus/paygate.rules.yml");
    let runbook = repo_file("docs/RUNBOOK.md");
    let mut names = BTreeSet::new();
    for block in rules.split("      - alert: ").skip(1) {
        let name = block.lines().next().unwrap().trim();
        names.insert(name.to_owned());
        for needed in [
            "\n        for: ",
            "\n          summary: ",
            "\n          description: ",
        ] {
            assert!(block.contains(needed), "{name}: no `{}`", needed.trim());
        }
        assert!(
            block.contains("\n          severity: critical\n")
                || block.contains("\n          severity: warning\n"),
            "{name}: severity is critical or warning"
        );
        let link = format!("runbook_url: \"docs/RUNBOOK.md#{}\"", name.to_lowercase());
        assert!(block.contains(&link), "{name}: no `{link}`");
        assert!(
            runbook.lines().any(|l| l == format!("### {name}")),
            "docs/RUNBOOK.md has no section `### {name}`"
        );
    }
    for condition in [
        "PaygateCallbacksFailing",
        "PaygateCallbacksUnverified",
        "PaygateJobNotRun",
        "PaygateDiscrepanciesUnhealed",
        "PaygateErasuresOverdue",
        "PaygateDatabaseUnreachable",
        "PaygateLoadShed",
    ] {
        assert!(names.contains(condition), "no alert {condition}");
    }
    // Every alert is exercised by the promtool tests.
    let tests = repo_file("ops/prometheus/paygate.rules.test.yml");
    for name in &names {
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n    exp_alerts:\n    - exp_labels:"
            )),
            "paygate.rules.test.yml never shows {name} firing"
        );
    }
    let readme = repo_file("README.md");
    for path in [
        "ops/prometheus/paygate.rules.yml",
        "ops/grafana/paygate.json",
        "docs/RUNBOOK.md",
    ] {
        assert!(readme.contains(path), "README does not say where {path} is");
    }
}

#[test]
fn the_dashboard_is_grafana_json_over_catalogued_metrics() {
    let catalogue = catalogue();
    let dashboard: Value = serde_json::from_str(&repo_file("ops/grafana/paygate.json"))
        .expect("ops/grafana/paygate.json is JSON");
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(dashboard["__inputs"][0]["pluginId"], "prometheus");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let datasource = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_u64().expect("an id")),
            "panel ids are unique"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("a title");
        assert_eq!(panel["datasource"], datasource, "{title}");
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"], datasource, "{title}");
            let expr = target["expr"].as_str().expect("an expr");
            exprs += 1;
            problems.extend(check_expr(&catalogue, expr, title));
        }
    }
    assert!(exprs > 20, "{exprs} queries");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Each of these is on the dashboard.
    let text = dashboard.to_string();
    for metric in [
        "paygate_requests_refused_total",
        "paygate_callbacks_total",
        "paygate_settlements_total",
        "paygate_job_runs_total",
        "paygate_job_last_success_timestamp_seconds",
        "paygate_provider_call_seconds",
        "paygate_events_pushed_total",
        "paygate_waits_degraded_total",
        "paygate_erasures_overdue",
        "paygate_reconciliation_unhealed_discrepancies",
        "paygate_sqlite_batch_commits_total",
    ] {
        assert!(
            text.contains(metric),
            "the dashboard does not show {metric}"
        );
    }
}

#[test]
fn the_checker_finds_a_renamed_metric_or_label() {
    let catalogue = catalogue();
    assert!(
        check_expr(
            &catalogue,
            r#"sum by (job_name) (rate(paygate_job_runs_total{outcome="ok"}[5m]))"#,
            "t"
        )
        .is_empty()
    );
    assert!(
        check_expr(
            &catalogue,
            "rate(paygate_provider_call_seconds_count[5m])",
            "t"
        )
        .is_empty()
    );
    let found = check_expr(
        &catalogue,
        r#"sum by (job) (paygate_job_run_total{job_name="x"})"#,
        "t",
    );
    assert_eq!(
        found,
        ["t: `paygate_job_run_total` is not in src/telemetry.rs's catalogue"]
    );
    let found = check_expr(
        &catalogue,
        r#"sum by (jobname) (paygate_job_runs_total{jobname="x"})"#,
        "t",
    );
    assert_eq!(
        found,
        [
            "t: `paygate_job_runs_total` has no label `jobname`",
            "t: `by (jobname)` is a label of none of its metrics"
        ]
    );
    assert_eq!(
        check_expr(&catalogue, "paygate_erasures_overdue_count", "t"),
        ["t: `paygate_erasures_overdue_count` is not in src/telemetry.rs's catalogue"]
    );
}

// ---------------------------------------------------------------------------------------------
// The database gauges, on both backends.

async fn scrape(app: &TestApp) -> String {
    let res = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The value of `series` (its name and labels exactly as exposed), if exposed.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')
            .map(|v| v.trim().parse().expect("a number"))
    })
}

fn must(metrics: &str, series: &str) -> f64 {
    value(metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

const LAST_SUCCESS: &str = "paygate_job_last_success_timestamp_seconds";
const UNHEALED: &str = "paygate_reconciliation_unhealed_discrepancies";
const LAST_DAY: &str = "paygate_reconciliation_last_completed_day_timestamp_seconds";
const CLASSES: [&str; 5] = [
    "missing_local",
    "missing_remote",
    "amount_mismatch",
    "status_mismatch",
    "duplicate_remote",
];

/// A new database: reachable, every scheduled job never run (0, not missing), nothing open.
async fn a_new_database_shows_every_job_never_run_and_nothing_open(app: TestApp) {
    let m = scrape(&app).await;
    assert_eq!(must(&m, "paygate_database_up"), 1.0);
    assert_eq!(must(&m, "paygate_database_gauges_ok"), 1.0);
    for job in Job::ALL {
        let series = format!("{LAST_SUCCESS}{{job_name=\"{}\"}}", job.name());
        if job.is_scheduled() {
            assert_eq!(must(&m, &series), 0.0, "{series}");
        } else {
            assert_eq!(
                value(&m, &series),
                None,
                "{series}: the push loop has no lease"
            );
        }
    }
    assert_eq!(must(&m, "paygate_erasures_overdue"), 0.0);
    for provider in ["wechatpay", "alipay"] {
        for class in CLASSES {
            let series = format!("{UNHEALED}{{provider=\"{provider}\",class=\"{class}\"}}");
            assert_eq!(must(&m, &series), 0.0, "{series}");
        }
        assert_eq!(
            must(&m, &format!("{LAST_DAY}{{provider=\"{provider}\"}}")),
            0.0
        );
    }
    assert!(
        !m.contains("class=\"matched\""),
        "matched is not a discrepancy"
    );
    // Exposed once each (the erasure gauge is no longer also set by the job).
    for name in ["paygate_erasures_overdue", "paygate_database_up"] {
        let declared = m
            .lines()
            .filter(|l| *l == format!("# TYPE {name} gauge"))
            .count();
        assert_eq!(declared, 1, "{name} declared {declared} times");
    }
}
on_both_backends!(
    a_new_database_shows_every_job_never_run_and_nothing_open_on_sqlite,
    a_new_database_shows_every_job_never_run_and_nothing_open_on_postgres,
    a_new_database_shows_every_job_never_run_and_nothing_open
);

/// One instance runs a job's slot; another instance of the same database reports its success.
/// A failed run does not move it, nor does a success older than the one recorded.
async fn a_job_run_on_one_instance_shows_on_every_instance(app: TestApp) {
    let other = app.spawn_sibling().await;
    let before = app.clock.now().timestamp_millis();
    let slot = Job::Expire.slot_of(app.clock.now());
    assert!(
        app.jobs
            .run_slot(Job::Expire, slot)
            .await
            .unwrap()
            .is_some()
    );
    let after = app.clock.now().timestamp_millis();
    let series = format!("{LAST_SUCCESS}{{job_name=\"expire\"}}");
    let seen = must(&scrape(&other).await, &series);
    assert!(
        (before as f64 / 1e3..=after as f64 / 1e3).contains(&seen),
        "{seen} not within the run ({before}..{after} ms)"
    );
    assert_eq!(
        must(
            &scrape(&other).await,
            &format!("{LAST_SUCCESS}{{job_name=\"active_query\"}}")
        ),
        0.0
    );

    // Later slots, finished by hand at chosen times (epoch ms, in 2030).
    let at = 1_900_000_000_123_i64;
    let lease_ms = 60_000;
    let mut next = slot;
    let mut take = || {
        next += 60_000;
        next
    };
    let failed = lease::take(&app.db, "expire", "test", take(), at, lease_ms)
        .await
        .unwrap()
        .unwrap();
    lease::finish(
        &app.db,
        "expire",
        failed,
        Outcome::Failed(r#"{"error":"test"}"#),
        at,
    )
    .await
    .unwrap();
    assert_eq!(
        must(&scrape(&other).await, &series),
        seen,
        "a failed run is not a success"
    );

    let ok = lease::take(&app.db, "expire", "test", take(), at, lease_ms)
        .await
        .unwrap()
        .unwrap();
    lease::finish(&app.db, "expire", ok, Outcome::Succeeded("{}"), at)
        .await
        .unwrap();
    assert_eq!(must(&scrape(&other).await, &series), at as f64 / 1e3);

    // A run that finished before the recorded success (it overran, another took the lease).
    let late = lease::take(&app.db, "expire", "test", take(), at, lease_ms)
        .await
        .unwrap()
        .unwrap();
    lease::finish(
        &app.db,
        "expire",
        late,
        Outcome::Succeeded("{}"),
        at - 5_000,
    )
    .await
    .unwrap();
    assert_eq!(must(&scrape(&app).await, &series), at as f64 / 1e3);
}
on_both_backends!(
    a_job_run_on_one_instance_shows_on_every_instance_on_sqlite,
    a_job_run_on_one_instance_shows_on_every_instance_on_postgres,
    a_job_run_on_one_instance_shows_on_every_instance
);

async fn reconcile(app: &TestApp, provider: &str, date: &str) -> Value {
    let res = app
        .http
        .post(format!("{}/v1/reconciliations", app.url))
        .bearer_auth(FINANCE_KEY)
        .json(&json!({"provider": provider, "date": date}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "completed", "{run}");
    run
}

/// A discrepancy left unhealed counts until its date is re-run clean, or leaves the window;
/// the last reconciled day is the start of its Beijing day.
async fn an_unhealed_discrepancy_counts_until_its_date_is_reconciled_clean(app: TestApp) {
    let _kept = app
        .paid_order("emp_ops_recon", "wechatpay", "resume-download-50")
        .await;
    let missing = app
        .paid_order("emp_ops_recon", "wechatpay", "resume-download-50")
        .await;
    let today = app
        .clock
        .now()
        .with_timezone(&paygate::clock::beijing())
        .date_naive();
    app.set_faults(json!({"bill_missing_row": missing["order_no"]}))
        .await;
    reconcile(&app, "wechatpay", &today.to_string()).await;

    let m = scrape(&app).await;
    for class in CLASSES {
        let series = format!("{UNHEALED}{{provider=\"wechatpay\",class=\"{class}\"}}");
        let expected = if class == "missing_remote" { 1.0 } else { 0.0 };
        assert_eq!(must(&m, &series), expected, "{series}");
    }
    let (start_ms, _) = paygate::domain::reconciliation::day_bounds(today);
    let last_day = format!("{LAST_DAY}{{provider=\"wechatpay\"}}");
    assert_eq!(must(&m, &last_day), start_ms as f64 / 1e3);
    assert_eq!(must(&m, &format!("{LAST_DAY}{{provider=\"alipay\"}}")), 0.0);

    // The bill is right again: the re-run replaces the date's result.
    let series = format!("{UNHEALED}{{provider=\"wechatpay\",class=\"missing_remote\"}}");
    app.set_faults(json!({})).await;
    reconcile(&app, "wechatpay", &today.to_string()).await;
    assert_eq!(must(&scrape(&app).await, &series), 0.0);

    // Left as it is, it counts for the window's days, then no longer; the day stays the last.
    app.set_faults(json!({"bill_missing_row": missing["order_no"]}))
        .await;
    reconcile(&app, "wechatpay", &today.to_string()).await;
    app.clock
        .advance(chrono::Duration::days(paygate::api::metrics::UNHEALED_DAYS));
    assert_eq!(must(&scrape(&app).await, &series), 1.0);
    app.clock.advance(chrono::Duration::days(1));
    let m = scrape(&app).await;
    assert_eq!(must(&m, &series), 0.0);
    assert_eq!(must(&m, &last_day), start_ms as f64 / 1e3);
}
on_both_backends!(
    an_unhealed_discrepancy_counts_until_its_date_is_reconciled_clean_on_sqlite,
    an_unhealed_discrepancy_counts_until_its_date_is_reconciled_clean_on_postgres,
    an_unhealed_discrepancy_counts_until_its_date_is_reconciled_clean
);

/// An erasure request past its `due_by` is counted from the database, with no job run.
async fn an_overdue_erasure_is_counted_without_any_job_run(app: TestApp) {
    let (status, _) = app
        .request_erasure("emp_ops_overdue", "ops-overdue-1")
        .await;
    assert_eq!(status, 202);
    assert_eq!(must(&scrape(&app).await, "paygate_erasures_overdue"), 0.0);
    app.clock.advance(chrono::Duration::days(10));
    let m = scrape(&app).await;
    assert_eq!(must(&m, "paygate_erasures_overdue"), 1.0);
    assert!(!m.contains("emp_ops_overdue"), "an employer id in /metrics");
}
on_both_backends!(
    an_overdue_erasure_is_counted_without_any_job_run_on_sqlite,
    an_overdue_erasure_is_counted_without_any_job_run_on_postgres,
    an_overdue_erasure_is_counted_without_any_job_run
);
