//! Strict grammar (DESIGN.md §1.3, issue 20 item 6): an amount a client sends matches
//! `^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$` exactly and a date is `YYYY-MM-DD` exactly; anything
//! else is refused with the field's error code and changes nothing.

mod common;

use common::{FINANCE_KEY, TestApp};
use serde_json::{Value, json};

async fn lenient_amounts_and_dates_are_refused(app: TestApp) {
    let order = app
        .paid_order("emp_grammar_1", "wechatpay", "resume-download-50")
        .await;
    let no = order["order_no"].as_str().unwrap();
    for (i, amount) in [
        ".5", "1.", " 1.00", "1.00 ", "+1", "1e2", "01.00", "1.005", "-1.00", "1,00", "",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = app
            .post_refund(
                FINANCE_KEY,
                &format!("grammar-{i}"),
                no,
                json!({"amount": amount, "reason": "duplicate purchase"}),
            )
            .await;
        assert_eq!(status, 422, "{amount:?}: {body}");
        assert_eq!(body["error"]["code"], "refund_amount_invalid", "{amount:?}");
    }
    let refunds = app
        .count("SELECT COUNT(*) FROM refund WHERE order_no = $1", no)
        .await;
    assert_eq!(refunds, 0, "a refused amount refunds nothing");
    assert_eq!(app.order(no).await["status"], "paid");
    let (status, refund) = app
        .post_refund(
            FINANCE_KEY,
            "grammar-ok",
            no,
            json!({"amount": "0.5", "reason": "duplicate purchase"}),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    assert_eq!(refund["amount"], "0.50");

    for date in [
        "2026-12-1",
        "2026-1-01",
        "+2026-12-01",
        " 2026-12-01",
        "20261201",
    ] {
        let res = app
            .http
            .post(format!("{}/v1/reconciliations", app.url))
            .bearer_auth(FINANCE_KEY)
            .json(&json!({"provider": "wechatpay", "date": date}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{date:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_date", "{date:?}: {body}");
        let res = app
            .http
            .get(format!("{}/v1/reconciliations", app.url))
            .query(&[("provider", "wechatpay"), ("from", date)])
            .bearer_auth(FINANCE_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "from={date:?}");
    }
    let runs = app
        .count(
            "SELECT COUNT(*) FROM reconciliation_run WHERE provider = $1",
            "wechatpay",
        )
        .await;
    assert_eq!(runs, 0);
}

on_both_backends!(
    lenient_amounts_and_dates_are_refused_on_sqlite,
    lenient_amounts_and_dates_are_refused_on_postgres,
    lenient_amounts_and_dates_are_refused
);
