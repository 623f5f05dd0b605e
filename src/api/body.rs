//! What the handlers share to read a request.

/// Parses a JSON body ourselves so malformed input gets the error envelope.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::error::ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        crate::error::ApiError::bad_request("invalid_json", format!("request body: {e}"))
    })
}

pub(super) fn order_not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound("order_not_found", "no such order".into())
}

/// The `{order_no}` of a path: one paygate never issued is answered as an unknown order.
pub(super) fn order_no(text: &str) -> Result<crate::domain::OrderNo, crate::error::ApiError> {
    crate::domain::OrderNo::parse(text).ok_or_else(order_not_found)
}
