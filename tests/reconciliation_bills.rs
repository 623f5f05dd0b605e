//! Bills as they come, not as paygate writes them (issues 19 and 20): a transaction billed
//! twice, downloads and archives past `[reconciliation] max_bill_bytes`, a run dropped by its
//! caller, and Alipay archives built byte by byte with GBK or UTF-8 entry names, one of whose
//! rows has no merchant order number.

mod common;

use std::io::Write as _;

use common::{Backend, FINANCE_KEY, TestApp};
use paygate::clock::Clock;
use paygate::domain::ProviderId;
use paygate::providers::BillError;
use paygate::providers::bounds::Exceeded;
use paygate::reconcile::ReconcileError;
use serde_json::{Value, json};

fn no(order: &Value) -> String {
    order["order_no"].as_str().unwrap().to_owned()
}

fn txn(order: &Value) -> String {
    order["payment_record"]["provider_transaction_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn today(app: &TestApp) -> chrono::NaiveDate {
    app.clock
        .now()
        .with_timezone(&paygate::clock::beijing())
        .date_naive()
}

async fn reconcile(app: &TestApp, provider: &str) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}/v1/reconciliations", app.url))
        .bearer_auth(FINANCE_KEY)
        .json(&json!({"provider": provider, "date": today(app).to_string()}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The discrepancies CSV of a run, one `Vec` of cells per row (no cell of these tests holds a
/// comma or a quote).
async fn csv_rows(app: &TestApp, id: &str) -> Vec<Vec<String>> {
    let res = app
        .http
        .get(format!(
            "{}/v1/reconciliations/{id}/discrepancies.csv",
            app.url
        ))
        .bearer_auth(FINANCE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    let header = lines.next().unwrap();
    assert!(header.ends_with(",note,duplicate_bill_amount"), "{header}");
    lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn count(summary: &Value, class: &str) -> u64 {
    summary["payments"][class]["count"].as_u64().unwrap_or(0)
}

/// The classes of payments the summary has, besides `matched`.
fn payment_classes(summary: &Value) -> Vec<String> {
    summary["payments"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "matched")
        .cloned()
        .collect()
}

/// Nothing of a refused or dropped run is left: no run, no staged row, no work row.
async fn assert_nothing_left(app: &TestApp) {
    for (sql, what) in [
        (
            "SELECT COUNT(*) FROM reconciliation_run WHERE reconciliation_id <> $1",
            "runs",
        ),
        (
            "SELECT COUNT(*) FROM reconciliation_bill_row WHERE run_key <> $1",
            "staged rows",
        ),
        (
            "SELECT COUNT(*) FROM reconciliation_work WHERE reconciliation_id <> $1",
            "work rows",
        ),
        (
            "SELECT COUNT(*) FROM reconciliation_discrepancy WHERE reconciliation_id <> $1",
            "discrepancies",
        ),
    ] {
        assert_eq!(app.count(sql, "").await, 0, "{what} left");
    }
}

// ---------------------------------------------------------------------------------------------
// A transaction billed twice.

/// With the sandbox's `bill_duplicate_row` fault on either provider, the repeated row is a
/// `duplicate_remote` with both rows' amounts; `matched` is the local payments, each once.
async fn a_transaction_billed_twice_is_a_duplicate_remote(app: TestApp) {
    for provider in ["wechatpay", "alipay"] {
        let mut orders = Vec::new();
        for _ in 0..3 {
            orders.push(
                app.paid_order("emp_dup", provider, "resume-download-50")
                    .await,
            );
        }
        let twice = &orders[1];
        app.set_faults(json!({"bill_duplicate_row": no(twice)}))
            .await;
        let (status, run) = reconcile(&app, provider).await;
        assert_eq!(status, 201, "{provider}: {run}");
        let summary = &run["summary"];
        assert_eq!(summary["bill_rows"], 4, "{provider}: {summary}");
        assert_eq!(summary["local_payments"]["count"], 3);
        assert_eq!(count(summary, "matched"), 3, "{provider}: {summary}");
        assert_eq!(
            summary["payments"]["matched"]["amount_fen"],
            summary["local_payments"]["amount_fen"]
        );
        assert_eq!(count(summary, "duplicate_remote"), 1);
        let fen = summary["local_payments"]["amount_fen"].as_i64().unwrap() / 3;
        assert_eq!(summary["payments"]["duplicate_remote"]["amount_fen"], fen);
        assert_eq!(payment_classes(summary), vec!["duplicate_remote"]);
        let rows = csv_rows(&app, run["reconciliation_id"].as_str().unwrap()).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        let amount = twice["amount"].as_str().unwrap();
        assert_eq!(
            (&row[0], &row[1], &row[2], &row[3]),
            (
                &"duplicate_remote".to_owned(),
                &"payment".to_owned(),
                &no(twice),
                &txn(twice)
            ),
            "{row:?}"
        );
        // Both rows' amounts: bill_amount the first's, duplicate_bill_amount the repeat's.
        assert_eq!((row[5].as_str(), row[11].as_str()), (amount, amount));
        app.set_faults(json!({})).await;
    }
}
on_both_backends!(
    a_transaction_billed_twice_is_a_duplicate_remote_on_sqlite,
    a_transaction_billed_twice_is_a_duplicate_remote_on_postgres,
    a_transaction_billed_twice_is_a_duplicate_remote
);

/// A payment paygate missed, billed twice: healed once through the one settlement path, the
/// repeat reported beside it.
async fn a_missed_payment_billed_twice_is_healed_once(app: TestApp) {
    let order = app.create_order("emp_dup_heal", "resume-download-50").await;
    let order_no = no(&order);
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    app.pay(&order_no).await;
    app.set_faults(json!({"drop_notifications": 1.0, "bill_duplicate_row": order_no}))
        .await;
    let (status, run) = reconcile(&app, "wechatpay").await;
    assert_eq!(status, 201, "{run}");
    let summary = &run["summary"];
    assert_eq!(count(summary, "missing_local"), 1, "{summary}");
    assert_eq!(count(summary, "duplicate_remote"), 1, "{summary}");
    assert_eq!(count(summary, "matched"), 0);
    assert_eq!(summary["healed"], 1);
    assert_eq!(app.order(&order_no).await["status"], "paid");
    app.assert_settled_once(&order_no).await;
    let mut classes: Vec<String> = csv_rows(&app, run["reconciliation_id"].as_str().unwrap())
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    classes.sort();
    assert_eq!(classes, ["duplicate_remote", "missing_local"]);
}
on_both_backends!(
    a_missed_payment_billed_twice_is_healed_once_on_sqlite,
    a_missed_payment_billed_twice_is_healed_once_on_postgres,
    a_missed_payment_billed_twice_is_healed_once
);

// ---------------------------------------------------------------------------------------------
// Bounds.

/// The endless downloads of this file write up to 1 MiB each: one at a time, so that the open
/// files a test sees are its own.
static BIG_FILES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Files this process holds open that are deleted (the gateway's nameless temporary bill files)
/// and at least `bytes` long.
fn open_deleted_files_of_at_least(bytes: u64) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().ends_with(" (deleted)"))
        })
        .filter(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.len() >= bytes))
        .count()
}

/// A bill server that streams without end: the download is cut off at `max_bill_bytes` and
/// refused (422 `bill_invalid`), its temporary file is gone, nothing is healed or written.
async fn an_endless_download_is_cut_off_and_refused(backend: Backend) {
    let _one = BIG_FILES.lock().await;
    let Some(app) = TestApp::spawn_with_max_bill_bytes(backend, 1 << 20).await else {
        return;
    };
    for (provider, channel) in [("wechatpay", "native"), ("alipay", "qr")] {
        let order = app
            .create_order_on("emp_endless", provider, channel, json!({}))
            .await;
        app.set_faults(json!({"drop_notifications": 1.0})).await;
        app.pay(&no(&order)).await;
        app.set_faults(json!({"drop_notifications": 1.0, "bill_endless_download": true}))
            .await;
        let (status, body) = reconcile(&app, provider).await;
        // The stream has no end: only the bound can have ended the download.
        assert_eq!(status, 422, "{provider}: {body}");
        assert_eq!(body["error"]["code"], "bill_invalid");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("larger than max_bill_bytes (1048576 bytes)"),
            "{message}"
        );
        assert_eq!(app.order(&no(&order)).await["status"], "pending");
        assert_nothing_left(&app).await;
        assert_eq!(
            open_deleted_files_of_at_least(512 * 1024),
            0,
            "the temporary file is closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_download_is_cut_off_and_refused_on_sqlite() {
    an_endless_download_is_cut_off_and_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_download_is_cut_off_and_refused_on_postgres() {
    an_endless_download_is_cut_off_and_refused(Backend::Postgres).await;
}

/// The app's state with `max_bill_bytes` changed, for the use case called directly.
fn with_max_bill_bytes(app: &TestApp, max_bill_bytes: u64) -> paygate::state::AppState {
    let mut state = app.state.clone();
    let mut config = (*state.config).clone();
    config.reconciliation.max_bill_bytes = max_bill_bytes;
    state.config = std::sync::Arc::new(config);
    state
}

fn file_of(bytes: &[u8]) -> std::fs::File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    file
}

/// A deflated ZIP with one entry named `name` (raw bytes; the zip writer sets the UTF-8 flag
/// only for names that are valid UTF-8).
fn deflated_zip(name: &[u8], contents: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .name(name);
    zip.start_file_with_options(options).unwrap();
    zip.write_all(contents).unwrap();
    zip.finish().unwrap().into_inner()
}

fn gzip(contents: &[u8]) -> Vec<u8> {
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    out.write_all(contents).unwrap();
    out.finish().unwrap()
}

/// Small files that inflate far past the bound (blank lines, comment lines) are refused by the
/// inflated bytes or lines, not read to their end; nothing is written.
async fn gzip_and_zip_bombs_are_refused(app: TestApp) {
    let state = with_max_bill_bytes(&app, 1 << 20);
    let detail = gbk(&format!("{}_20261206_业务明细.csv", account()));
    let blank_lines = vec![b'\n'; 8 << 20];
    let comment_lines = format!("#{}\n", "x".repeat(1022)).repeat(8 * 1024);
    let cases = [
        (
            ProviderId::Alipay,
            deflated_zip(&detail, &blank_lines),
            Exceeded::Lines((1 << 20) / 64),
        ),
        (
            ProviderId::Alipay,
            deflated_zip(&detail, comment_lines.as_bytes()),
            Exceeded::Decompressed(1 << 20),
        ),
        (
            ProviderId::Wechatpay,
            gzip(&blank_lines),
            Exceeded::Lines((1 << 20) / 64),
        ),
    ];
    for (provider, bomb, bound) in cases {
        assert!(bomb.len() < 64 * 1024, "a bomb: {} bytes", bomb.len());
        let result = paygate::reconcile::run_downloaded(
            state.reconcile(&paygate::domain::Actor::Cli),
            provider,
            today(&app),
            file_of(&bomb),
            app.clock.now(),
        )
        .await;
        match result {
            Err(ReconcileError::Bill(BillError::TooLarge(x))) => assert_eq!(x, bound),
            other => panic!("{provider:?} {bound:?}: {other:?}"),
        }
        assert_nothing_left(&app).await;
    }
}
on_both_backends!(
    gzip_and_zip_bombs_are_refused_on_sqlite,
    gzip_and_zip_bombs_are_refused_on_postgres,
    gzip_and_zip_bombs_are_refused
);

// ---------------------------------------------------------------------------------------------
// A run its caller gave up on.

async fn work_rows(app: &TestApp) -> i64 {
    app.count(
        "SELECT COUNT(*) FROM reconciliation_work WHERE reconciliation_id <> $1",
        "",
    )
    .await
}

/// The request times out while the run waits on the provider: the run is dropped with it, and
/// its work row goes at once (not at the 6-hour sweep).
async fn a_cancelled_run_leaves_no_work_row(backend: Backend) {
    let limits = paygate::config::LimitsConfig {
        request_timeout_ms: 1_000,
        ..paygate::config::LimitsConfig::default()
    };
    let Some(app) = TestApp::spawn_with_limits(backend, limits).await else {
        return;
    };
    app.paid_order("emp_cancel", "alipay", "resume-download-50")
        .await;
    // The bill URL's answer is held past the request's timeout.
    app.set_faults(json!({"api_latency_ms": 4_000})).await;
    let watch = async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while work_rows(&app).await == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the run never began"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let ((status, body), ()) = tokio::join!(reconcile(&app, "alipay"), watch);
    assert_eq!(status, 408, "{body}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while work_rows(&app).await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancelled run's work row stayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_nothing_left(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_leaves_no_work_row_on_sqlite() {
    a_cancelled_run_leaves_no_work_row(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_leaves_no_work_row_on_postgres() {
    a_cancelled_run_leaves_no_work_row(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Alipay archives, byte by byte.

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "{text}");
    bytes.into_owned()
}

/// The bill's account: the sandbox seller's PID and `0156`, as in Alipay's file names.
fn account() -> String {
    format!("{}0156", paygate::app::SANDBOX_ALIPAY_SELLER_ID)
}

/// The general-purpose flag bit 11: the entry name is UTF-8.
const UTF8_FLAG: u16 = 0x0800;

/// A ZIP written field by field (APPNOTE.TXT 4.3): stored entries, each name as raw bytes
/// under the given flags, then the central directory and its end record.
fn stored_zip(entries: &[(Vec<u8>, u16, Vec<u8>)]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    // 2026-12-06 10:00:00 in DOS form.
    let (time, date) = (10u16 << 11, ((2026u16 - 1980) << 9) | (12 << 5) | 6);
    for (name, flags, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let common = |h: &mut Vec<u8>| {
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
            h.extend_from_slice(&flags.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // stored
            h.extend_from_slice(&time.to_le_bytes());
            h.extend_from_slice(&date.to_le_bytes());
            h.extend_from_slice(&crc.sum().to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // no extra field
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name);
        out.extend_from_slice(data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by: MS-DOS, 2.0
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // no comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk 0
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let central_at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // this disk, the directory's disk
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // no comment
    out
}

/// One payment row of the detail CSV, laid out as the alipay.md §7 fixture's rows are.
struct PaymentRow {
    trade_no: String,
    out_trade_no: Option<String>,
    yuan: String,
}

/// The detail CSV of `date` (UTF-8 text, written in GBK by the caller): the fixture's header
/// lines and 25 columns (tests/fixtures/alipay_trade_bill_20190916_detail.gbk.csv, from
/// alipay.md §7), the rows, the end marker and footer totals.
fn detail_csv(date: chrono::NaiveDate, rows: &[PaymentRow], total_fen: i64) -> String {
    let fixture = include_bytes!("fixtures/alipay_trade_bill_20190916_detail.gbk.csv");
    let (fixture, _, bad) = encoding_rs::GBK.decode(fixture);
    assert!(!bad);
    let lines: Vec<&str> = fixture.lines().collect();
    let header = lines[4];
    assert!(
        header.starts_with("支付宝交易号,商户订单号,业务类型"),
        "{header}"
    );
    let end_marker = lines
        .iter()
        .find(|l| l.contains("业务明细列表结束"))
        .unwrap();
    let day = date.format("%Y年%m月%d日");
    let next = (date + chrono::Duration::days(1)).format("%Y年%m月%d日");
    let mut csv = format!(
        "#支付宝业务明细查询\n#账号：[{}]\n#起始日期：[{day} 00:00:00]   终止日期：[{next} 00:00:00]\n{}\n{header}\n",
        account(),
        lines[3]
    );
    let stamp = date.format("%Y-%m-%d");
    for row in rows {
        csv.push_str(&format!(
            "{}\t,{}\t,交易\t,职前通服务,{stamp} 10:00:00,{stamp} 10:00:05,\t,\t,\t,\t,*某某(fixture***@example.com)\t,{y},{y},0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,0.00,0.00,\n",
            row.trade_no,
            row.out_trade_no.as_deref().unwrap_or(""),
            y = row.yuan,
        ));
    }
    csv.push_str(&format!(
        "{end_marker}\n#交易合计：{}笔，商家实收共{}.{:02}元，商家优惠共0.00元\n#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元\n#导出时间：[{next} 05:46:49]\n",
        rows.len(),
        total_fen / 100,
        total_fen % 100
    ));
    csv
}

/// Alipay's archive (entry names in GBK, the UTF-8 flag clear) and one as other tools write it
/// (UTF-8 names, the flag set), both written byte by byte: each is found and reconciled. A
/// row without 商户订单号 (a collection-code payment) is one `missing_local`, noted as not an
/// order of paygate's, and the rest of the day reconciles.
async fn alipay_archives_named_in_gbk_or_utf8_reconcile(app: TestApp) {
    let mut rows = Vec::new();
    let mut total = 0;
    for _ in 0..3 {
        let order = app
            .paid_order("emp_zip", "alipay", "resume-download-50")
            .await;
        let amount = order["amount"].as_str().unwrap().to_owned();
        total += paygate::domain::Fen::parse_yuan(&amount).unwrap().get();
        rows.push(PaymentRow {
            trade_no: txn(&order),
            out_trade_no: Some(no(&order)),
            yuan: amount,
        });
    }
    let sticker_txn = format!("{}22001400000000009999", today(&app).format("%Y%m%d"));
    rows.push(PaymentRow {
        trade_no: sticker_txn.clone(),
        out_trade_no: None,
        yuan: "1.00".into(),
    });
    total += 100;
    let csv = gbk(&detail_csv(today(&app), &rows, total));
    let stamp = today(&app).format("%Y%m%d");
    let detail_name = format!("{}_{stamp}_业务明细.csv", account());
    let summary_name = format!("{}_{stamp}_业务明细(汇总).csv", account());
    for (encode, flags) in [
        (gbk as fn(&str) -> Vec<u8>, 0),
        (
            (|s: &str| s.as_bytes().to_vec()) as fn(&str) -> Vec<u8>,
            UTF8_FLAG,
        ),
    ] {
        let zip = stored_zip(&[
            (encode(&detail_name), flags, csv.clone()),
            (encode(&summary_name), flags, gbk("#支付宝业务汇总查询\n")),
        ]);
        // As built: the local header's flags (offset 6) and the name's bytes (offset 30).
        assert_eq!(u16::from_le_bytes([zip[6], zip[7]]), flags);
        assert_eq!(
            &zip[30..30 + encode(&detail_name).len()],
            &encode(&detail_name)[..]
        );
        let run = paygate::reconcile::run_downloaded(
            app.state.reconcile(&paygate::domain::Actor::Cli),
            ProviderId::Alipay,
            today(&app),
            file_of(&zip),
            app.clock.now(),
        )
        .await
        .unwrap_or_else(|e| panic!("flags {flags:#06x}: {e:?}"));
        let summary: Value = run.summary.clone();
        assert_eq!(summary["bill_rows"], 4, "{summary}");
        assert_eq!(count(&summary, "matched"), 3, "{summary}");
        assert_eq!(count(&summary, "missing_local"), 1, "{summary}");
        assert_eq!(payment_classes(&summary), vec!["missing_local"]);
        assert_eq!(summary["healed"], 0);
        let found = csv_rows(&app, &run.reconciliation_id).await;
        assert_eq!(found.len(), 1, "{found:?}");
        let row = &found[0];
        assert_eq!(
            (row[0].as_str(), row[1].as_str(), row[2].as_str()),
            ("missing_local", "payment", ""),
            "no order number: {row:?}"
        );
        assert_eq!(
            (row[3].as_str(), row[5].as_str()),
            (sticker_txn.as_str(), "1.00")
        );
        assert!(row[10].starts_with("not an order of paygate's"), "{row:?}");
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM reconciliation_run WHERE provider = $1",
            "alipay"
        )
        .await,
        1,
        "the second run replaced the first"
    );
}
on_both_backends!(
    alipay_archives_named_in_gbk_or_utf8_reconcile_on_sqlite,
    alipay_archives_named_in_gbk_or_utf8_reconcile_on_postgres,
    alipay_archives_named_in_gbk_or_utf8_reconcile
);

/// The sandbox's own Alipay archive is named as Alipay's is: GBK bytes, the UTF-8 flag clear.
#[tokio::test]
async fn the_sandbox_names_its_alipay_entries_in_gbk_without_the_utf8_flag() {
    let app = TestApp::spawn().await;
    let bytes = app.sandbox.alipay_bill(today(&app)).unwrap();
    let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let stamp = today(&app).format("%Y%m%d");
    let mut names = Vec::new();
    for i in 0..archive.len() {
        let entry = archive.by_index_data(i).unwrap();
        assert_eq!(entry.flags().as_u16() & UTF8_FLAG, 0, "entry {i}");
        names.push(entry.name_raw().to_vec());
    }
    assert_eq!(
        names,
        [
            gbk(&format!("{}_{stamp}_业务明细.csv", account())),
            gbk(&format!("{}_{stamp}_业务明细(汇总).csv", account())),
        ]
    );
}
