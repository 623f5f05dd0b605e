//! The cashier page and the browser's Pay button.

use crate::harness::{order, order_no, start};

#[tokio::test]
async fn cashier_page_shows_the_amount_in_yuan_a_qr_code_and_a_pay_button() {
    let h = start().await;
    let out_trade_no = order_no("CSH");
    let created = h
        .client
        .native_order(&order(
            &out_trade_no,
            19905,
            "http://127.0.0.1:9/webhooks/wechatpay",
        ))
        .await
        .unwrap();
    let page = h
        .http
        .get(format!("{}/sandbox/cashier/{out_trade_no}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("¥199.05"), "{html}");
    assert!(html.contains("<svg"));
    assert!(html.contains(&created.code_url));
    assert!(html.contains(&format!("action=\"/sandbox/pay/{out_trade_no}\"")));

    // The browser's form post ends on a page saying paid.
    let paid = h
        .http
        .post(format!("{}/sandbox/pay/{out_trade_no}", h.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "text/html")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status().as_u16(), 200);
    let html = paid.text().await.unwrap();
    assert!(html.contains("Paid ¥199.05"), "{html}");
    assert!(!html.contains("openid"));

    let after = h
        .http
        .get(format!("{}/sandbox/cashier/{out_trade_no}", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.contains("Paid."));
    assert!(!after.contains("<form"));

    let missing = h
        .http
        .get(format!("{}/sandbox/cashier/NOSUCHORDER", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
