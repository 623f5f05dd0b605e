//! What the handlers share to read a request.

/// Parses a JSON body ourselves so malformed input gets the error envelope.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::error::ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        crate::error::ApiError::bad_request("invalid_json", format!("request body: {e}"))
    })
}
