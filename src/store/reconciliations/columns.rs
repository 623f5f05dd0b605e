//! Column decoders the reconciliation tables share: an amount that is not a [`Fen`] is an
//! error naming its column, never a zero or a blank.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::domain::Fen;
use crate::store::orders::fen_of;

pub(super) fn fen(r: &AnyRow, column: &'static str) -> Result<Fen, sqlx::Error> {
    fen_of(column, r.try_get(column)?)
}

pub(super) fn opt_fen(r: &AnyRow, column: &'static str) -> Result<Option<Fen>, sqlx::Error> {
    r.try_get::<Option<i64>, _>(column)?
        .map(|value| fen_of(column, value))
        .transpose()
}
