//! The trade bill of one day: downloaded gzipped, its SHA-1 checked before any row is read,
//! then read row by row into provider-neutral entries (no payer columns).

use anyhow::anyhow;
use paygate_wechatpay::{Client, ClientError};

use crate::domain::Fen;
use crate::reconcile::bill::{self as bill, BillEntry, BillError, BillTotals, EntryKind};
use crate::reconcile::bounds::{BillSink, Bounds};

/// Downloads the bill of `date` into `sink` and checks the hash WeChat signed.
pub(super) async fn download(
    client: &Client,
    date: chrono::NaiveDate,
    sink: &mut BillSink,
) -> Result<(), BillError> {
    use std::io::Seek;
    let classify = |e: ClientError| {
        if e.is_bill_not_ready() {
            BillError::NotReady
        } else if e.is_unavailable() {
            BillError::Unavailable(e.into())
        } else {
            BillError::Invalid(e.into())
        }
    };
    // Gzip: a tenth of the bytes on the wire; the SHA-1 is over the uncompressed file.
    let download = client.trade_bill(date, true).await.map_err(classify)?;
    if let Err(e) = client.download_bill(&download, sink).await {
        // Cut off at max_bill_bytes: the bill's fault, not the provider's availability.
        return Err(sink
            .exceeded()
            .map_or_else(|| classify(e), BillError::TooLarge));
    }
    let bounds = sink.bounds().clone();
    let file = sink.file();
    file.rewind()?;
    // The hash WeChat signed, checked before any row is read (a second pass over the file,
    // on a blocking thread: it is tens of megabytes for a busy day), inflated here so that
    // the inflated size and lines are bounded.
    let copy = file.try_clone()?;
    tokio::task::spawn_blocking(move || download.verify_file(bounds.reader(gunzip(copy)), false))
        .await
        .map_err(|e| BillError::Invalid(e.into()))?
        .map_err(bill::invalid)?;
    file.rewind()?;
    Ok(())
}

/// Reads a downloaded bill of merchant `mchid` (see `PaymentProvider::read_bill`).
pub(super) fn read(
    mchid: &str,
    file: std::fs::File,
    bounds: &Bounds,
    each: &mut dyn FnMut(BillEntry) -> bool,
) -> Result<BillTotals, BillError> {
    let mut reader = paygate_wechatpay::TradeBillReader::new(bounds.reader(gunzip(file)), false);
    let mut totals = BillTotals::NONE;
    for row in reader.by_ref() {
        let row = row.map_err(bill::invalid)?;
        if row.mchid != mchid {
            return Err(BillError::Invalid(anyhow!(
                "a bill row of another merchant"
            )));
        }
        let amount = Fen::new(row.amount_fen).map_err(bill::invalid)?;
        let entry = match row.kind {
            paygate_wechatpay::BillRowKind::Payment => BillEntry {
                kind: EntryKind::Payment,
                order_no: Some(row.out_trade_no),
                provider_txn_id: row.transaction_id,
                refund_no: None,
                amount,
                status: row.trade_state,
                at: row.trade_time,
            },
            paygate_wechatpay::BillRowKind::Refund => BillEntry {
                kind: EntryKind::Refund,
                order_no: Some(row.out_trade_no),
                provider_txn_id: row.transaction_id,
                refund_no: row.out_refund_no,
                amount,
                // 退款状态 as of the bill; a refund row without one is not a success.
                status: row.refund_status.unwrap_or_default(),
                at: row.trade_time,
            },
        };
        bill::tally(&mut totals, &entry)?;
        if !each(entry) {
            return Err(BillError::Invalid(anyhow!("reading the bill was stopped")));
        }
    }
    reader
        .totals()
        .ok_or_else(|| BillError::Invalid(anyhow!("the bill ended without its totals")))?;
    Ok(totals)
}

/// A `tar_type=GZIP` bill inflated (WeChat may write several gzip members).
fn gunzip(file: std::fs::File) -> flate2::read::MultiGzDecoder<std::io::BufReader<std::fs::File>> {
    flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))
}
