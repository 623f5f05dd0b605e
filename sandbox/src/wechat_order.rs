//! Creating WeChat Pay orders on the four channels: `POST /v3/pay/transactions/{native, jsapi,
//! h5, app}` (wechatpay-v3.md §4), each with paygate's privacy allowlist for that channel.
//!
//! The allowlist (design §1.1): merchant ids, the order number, the amount, one neutral
//! description, the expiry and the notify URL, on every channel; plus, only where the channel
//! makes it mandatory, the one payer field it needs: `payer.openid` on JSAPI, `scene_info`
//! with exactly `payer_client_ip` and `h5_info.type` on H5. WeChat itself would accept
//! `attach`, `detail`, `goods_tag`, a fuller `scene_info`…; the sandbox refuses anything else
//! with 400 `INVALID_REQUEST`, so a privacy regression in the gateway fails its tests instead
//! of reaching a provider.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use chrono::FixedOffset;
use rand::Rng as _;
use serde_json::{Map, Value, json};

use crate::wechat::{Answer, ApiError, Order, OrderState};
use crate::wire::wechat::Authorization;
use crate::{Sandbox, lock};

/// The four prepay channels, and the `trade_type` each becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    Native,
    Jsapi,
    H5,
    App,
}

impl Channel {
    /// `trade_type` in the query answer and the notification.
    pub(crate) fn trade_type(self) -> &'static str {
        match self {
            Channel::Native => "NATIVE",
            Channel::Jsapi => "JSAPI",
            Channel::H5 => "MWEB",
            Channel::App => "APP",
        }
    }

    /// The answer's one field: what the merchant hands on to the buyer.
    fn answer_field(self) -> &'static str {
        match self {
            Channel::Native => "code_url",
            Channel::Jsapi | Channel::App => "prepay_id",
            Channel::H5 => "h5_url",
        }
    }

    /// Top-level fields allowed beyond the common ones.
    fn extra_field(self) -> Option<&'static str> {
        match self {
            Channel::Jsapi => Some("payer"),
            Channel::H5 => Some("scene_info"),
            Channel::Native | Channel::App => None,
        }
    }
}

/// Fields every channel may send.
const ALLOWED_ORDER_FIELDS: &[&str] = &[
    "appid",
    "mchid",
    "description",
    "out_trade_no",
    "time_expire",
    "notify_url",
    "amount",
];
const ALLOWED_AMOUNT_FIELDS: &[&str] = &["total", "currency"];
/// `h5_info.type` values (wechatpay-v3.md §4; from v2 samples, unconfirmed in a v3 page).
const H5_TYPES: &[&str] = &["iOS", "Android", "Wap"];

/// A payer field: compared like any parameter, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Private(pub(crate) String);

impl std::fmt::Debug for Private {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What a re-order must repeat exactly to get the same prepay answer back. The channel is part
/// of it: the same number on another channel is "other parameters".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderParams {
    pub(crate) channel: Channel,
    pub(crate) appid: String,
    pub(crate) mchid: String,
    pub(crate) description: String,
    pub(crate) out_trade_no: String,
    pub(crate) time_expire: Option<String>,
    pub(crate) notify_url: String,
    pub(crate) total: i64,
    pub(crate) currency: String,
    /// JSAPI: `payer.openid`, the buyer who will pay.
    pub(crate) payer_openid: Option<Private>,
    /// H5: `scene_info.payer_client_ip` and `scene_info.h5_info.type`.
    pub(crate) h5_scene: Option<(Private, String)>,
}

/// `POST /v3/pay/transactions/{channel}`.
pub(crate) async fn create(
    channel: Channel,
    sandbox: Sandbox,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = sandbox
        .authenticate(&Method::POST, &uri, &headers, &body)
        .and_then(|auth| sandbox.create_order(channel, &auth, &headers, &body));
    sandbox.respond(answer).await
}

pub(crate) async fn native_order(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(Channel::Native, sandbox, uri, headers, body).await
}

pub(crate) async fn jsapi_order(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(Channel::Jsapi, sandbox, uri, headers, body).await
}

pub(crate) async fn h5_order(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(Channel::H5, sandbox, uri, headers, body).await
}

pub(crate) async fn app_order(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(Channel::App, sandbox, uri, headers, body).await
}

impl Sandbox {
    fn create_order(
        &self,
        channel: Channel,
        auth: &Authorization,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Answer, ApiError> {
        let wechat = &self.inner.wechat;
        let request: Value =
            serde_json::from_slice(body).map_err(|_| ApiError::param("请求体不是合法的JSON"))?;
        let params = parse_order(&request, channel)?;
        // "Header mchid must equal body mchid" (WeChat answers this one as a signature error).
        if params.mchid != auth.mchid {
            return Err(ApiError::sign_error());
        }
        if params.appid != wechat.appid {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "APPID_MCHID_NOT_MATCH",
                "appid和mch_id不匹配",
            ));
        }

        let field = channel.answer_field();
        let mut orders = lock(&wechat.orders);
        if let Some(existing) = orders.get(&params.out_trade_no) {
            // Re-posting identical parameters is WeChat's way to get the current prepay answer
            // again; anything else about an existing number is refused. "Already paid" is read
            // strictly: an error, never the old answer, so a gateway can never show a second
            // payment for a paid order. (The v3 code for it is unconfirmed; the skill docs say
            // ORDER_PAID.)
            return match &existing.state {
                OrderState::Success(_) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ORDER_PAID",
                    "该订单已支付",
                )),
                OrderState::Closed => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ORDER_CLOSED",
                    "订单已关闭",
                )),
                OrderState::NotPay if existing.params != params => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "OUT_TRADE_NO_USED",
                    "请求重入时，参数与首次请求时不一致",
                )),
                OrderState::NotPay => Ok(Answer::json(&json!({ (field): existing.prepay }))),
            };
        }
        let prepay_id = new_prepay_id(self);
        let (prepay, qr) = match channel {
            Channel::Native => {
                let code_url = format!(
                    "weixin://wxpay/bizpayurl?pr={}",
                    crate::wire::wechat::nonce(7)
                );
                (code_url.clone(), code_url)
            }
            // What the buyer's WeChat would be handed: `package` for JSAPI, the id for App.
            Channel::Jsapi => (prepay_id.clone(), format!("prepay_id={prepay_id}")),
            Channel::App => (prepay_id.clone(), prepay_id),
            // Shaped like WeChat's `…/checkmweb?prepay_id=…&package=…`: a URL with a query of its
            // own, to which the merchant appends `&redirect_url=…` (wechatpay-v3.md §4).
            Channel::H5 => {
                let url = format!(
                    "http://{}/sandbox/cashier/{}?prepay_id={prepay_id}",
                    request_host(headers),
                    params.out_trade_no
                );
                (url.clone(), url)
            }
        };
        tracing::info!(
            out_trade_no = %params.out_trade_no,
            trade_type = channel.trade_type(),
            "sandbox: WeChat order created"
        );
        orders.insert(
            params.out_trade_no.clone(),
            Order {
                params,
                prepay: prepay.clone(),
                qr,
                state: OrderState::NotPay,
                refunds: Vec::new(),
            },
        );
        Ok(Answer::json(&json!({ (field): prepay })))
    }
}

/// The host the merchant reached the sandbox at (`Host` header), for the H5 cashier URL; a
/// missing or odd one (anything but a host name or address and a port) gives `localhost`.
pub(crate) fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .unwrap_or("localhost")
        .to_owned()
}

/// Like WeChat's `wx201410272009395522657a690389285100`: `wx`, the Beijing time as 14 digits,
/// 20 random hex digits (36 characters; WeChat's limit is 64).
fn new_prepay_id(sandbox: &Sandbox) -> String {
    let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
    let time = sandbox.now().with_timezone(&beijing).format("%Y%m%d%H%M%S");
    let mut rng = rand::rng();
    format!(
        "wx{time}{:010}{}",
        rng.random_range(0..10_000_000_000u64),
        crate::wechat::random_hex(10)
    )
}

pub(crate) fn refuse_outside_allowlist(
    object: &Map<String, Value>,
    prefix: &str,
    allowed: &[&str],
) -> Result<(), ApiError> {
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::invalid_request(format!(
                "sandbox: field `{prefix}{key}` is outside paygate's privacy allowlist"
            )));
        }
    }
    Ok(())
}

fn parse_order(request: &Value, channel: Channel) -> Result<OrderParams, ApiError> {
    let object = request
        .as_object()
        .ok_or_else(|| ApiError::param("请求体必须是JSON对象"))?;
    let mut allowed = ALLOWED_ORDER_FIELDS.to_vec();
    allowed.extend(channel.extra_field());
    refuse_outside_allowlist(object, "", &allowed)?;
    let text = |key: &str| -> Result<String, ApiError> {
        match object.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None => Err(ApiError::param(format!("缺少参数{key}"))),
            Some(_) => Err(ApiError::param(format!("{key}参数类型错误"))),
        }
    };
    let appid = text("appid")?;
    let mchid = text("mchid")?;
    let description = text("description")?;
    let out_trade_no = text("out_trade_no")?;
    let notify_url = text("notify_url")?;
    let time_expire = match object.get("time_expire") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::param("time_expire参数类型错误")),
    };

    if appid.len() > 32 || mchid.len() > 32 {
        return Err(ApiError::param("appid或mchid长度错误"));
    }
    // "不能超过127个字符", and WeChat takes only 1–3-byte UTF-8 characters (no emoji).
    if description.chars().count() > 127 || description.chars().any(|c| c.len_utf8() > 3) {
        return Err(ApiError::param(
            "description长度超过127个字符或含有非法字符",
        ));
    }
    if !crate::wechat::valid_out_trade_no(&out_trade_no) {
        return Err(ApiError::param(
            "out_trade_no要求6-32个字符内，只能是数字、大小写字母_-|*",
        ));
    }
    if !valid_notify_url(&notify_url, 255) {
        return Err(ApiError::param("notify_url必须是不带参数的http(s)绝对地址"));
    }
    if let Some(expire) = &time_expire
        && chrono::DateTime::parse_from_rfc3339(expire).is_err()
    {
        return Err(ApiError::param("time_expire时间格式错误，应为rfc3339格式"));
    }

    let amount = object
        .get("amount")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::param("缺少参数amount"))?;
    refuse_outside_allowlist(amount, "amount.", ALLOWED_AMOUNT_FIELDS)?;
    // Integer fen only: 1.5 or "100" is a type error, 0 is "below the minimum".
    let total = amount
        .get("total")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::param("amount.total必须是整数（分）"))?;
    if total < 1 {
        return Err(ApiError::param("amount.total必须大于0"));
    }
    let currency = match amount.get("currency") {
        None => "CNY".to_owned(),
        Some(Value::String(c)) if c == "CNY" => c.clone(),
        Some(_) => return Err(ApiError::param("amount.currency仅支持CNY")),
    };

    let payer_openid = match channel {
        Channel::Jsapi => Some(parse_payer(object.get("payer"))?),
        _ => None,
    };
    let h5_scene = match channel {
        Channel::H5 => Some(parse_h5_scene(object.get("scene_info"))?),
        _ => None,
    };

    Ok(OrderParams {
        channel,
        appid,
        mchid,
        description,
        out_trade_no,
        time_expire,
        notify_url,
        total,
        currency,
        payer_openid,
        h5_scene,
    })
}

/// JSAPI's `payer`: exactly `{"openid": "…"}`. Missing → WeChat's 268501013 text, answered as
/// 400 `PARAM_ERROR` (the v3 code for it is not documented; the message is).
fn parse_payer(payer: Option<&Value>) -> Result<Private, ApiError> {
    let missing = || ApiError::param("JSAPI支付必须传openid");
    let payer = match payer {
        None => return Err(missing()),
        Some(Value::Object(payer)) => payer,
        Some(_) => return Err(ApiError::param("payer参数类型错误")),
    };
    refuse_outside_allowlist(payer, "payer.", &["openid"])?;
    match payer.get("openid") {
        Some(Value::String(openid)) if !openid.is_empty() => {
            // string(128), printable ASCII as WeChat's openids are.
            if openid.len() > 128 || !openid.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ApiError::param("payer.openid格式错误"));
            }
            Ok(Private(openid.clone()))
        }
        Some(Value::String(_)) | None => Err(missing()),
        Some(_) => Err(ApiError::param("payer.openid参数类型错误")),
    }
}

/// H5's `scene_info`: exactly `payer_client_ip` (IPv4 or IPv6, string(45)) and
/// `h5_info.type` (`iOS`, `Android` or `Wap`), both required.
fn parse_h5_scene(scene: Option<&Value>) -> Result<(Private, String), ApiError> {
    let scene = match scene {
        None => return Err(ApiError::param("缺少参数scene_info")),
        Some(Value::Object(scene)) => scene,
        Some(_) => return Err(ApiError::param("scene_info参数类型错误")),
    };
    refuse_outside_allowlist(scene, "scene_info.", &["payer_client_ip", "h5_info"])?;
    let ip = match scene.get("payer_client_ip") {
        None => return Err(ApiError::param("缺少参数scene_info.payer_client_ip")),
        Some(Value::String(ip)) if ip.len() <= 45 && ip.parse::<IpAddr>().is_ok() => ip.clone(),
        Some(_) => return Err(ApiError::param("scene_info.payer_client_ip格式错误")),
    };
    let h5_info = match scene.get("h5_info") {
        None => return Err(ApiError::param("缺少参数scene_info.h5_info")),
        Some(Value::Object(h5_info)) => h5_info,
        Some(_) => return Err(ApiError::param("scene_info.h5_info参数类型错误")),
    };
    refuse_outside_allowlist(h5_info, "scene_info.h5_info.", &["type"])?;
    let kind = match h5_info.get("type") {
        None => return Err(ApiError::param("缺少参数scene_info.h5_info.type")),
        Some(Value::String(kind)) if H5_TYPES.contains(&kind.as_str()) => kind.clone(),
        Some(_) => {
            return Err(ApiError::param(
                "scene_info.h5_info.type必须是iOS、Android或Wap",
            ));
        }
    };
    Ok((Private(ip), kind))
}

/// Absolute http(s), no query string, at most `max_len` characters (orders 255, refunds 256).
pub(crate) fn valid_notify_url(value: &str, max_len: usize) -> bool {
    let Some(rest) = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
    else {
        return false;
    };
    value.len() <= max_len && !rest.is_empty() && !value.contains('?') && !value.contains('#')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Channel, parse_order};

    fn base() -> serde_json::Value {
        json!({
            "appid": "wx8888888888888888",
            "mchid": "1900000001",
            "description": "职前通服务",
            "out_trade_no": "PG20261129000001",
            "notify_url": "https://example.com/webhooks/wechatpay",
            "amount": {"total": 19900, "currency": "CNY"},
        })
    }

    #[test]
    fn each_channel_takes_only_its_own_payer_field() {
        let mut jsapi = base();
        jsapi["payer"] = json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"});
        let mut h5 = base();
        h5["scene_info"] = json!({"payer_client_ip": "2001:db8::1", "h5_info": {"type": "Wap"}});

        assert!(parse_order(&jsapi, Channel::Jsapi).is_ok());
        assert!(parse_order(&h5, Channel::H5).is_ok());
        for channel in [Channel::Native, Channel::App, Channel::H5] {
            let refused = parse_order(&jsapi, channel).unwrap_err();
            assert_eq!(refused.code(), "INVALID_REQUEST", "{channel:?}");
        }
        for channel in [Channel::Native, Channel::App, Channel::Jsapi] {
            let refused = parse_order(&h5, channel).unwrap_err();
            assert_eq!(refused.code(), "INVALID_REQUEST", "{channel:?}");
        }
    }

    #[test]
    fn h5_scene_needs_a_real_ip_and_a_known_type() {
        for (scene, code) in [
            (json!({"h5_info": {"type": "Wap"}}), "PARAM_ERROR"),
            (
                json!({"payer_client_ip": "1.2.3", "h5_info": {"type": "Wap"}}),
                "PARAM_ERROR",
            ),
            (
                json!({"payer_client_ip": "1.2.3.4", "h5_info": {"type": "Web"}}),
                "PARAM_ERROR",
            ),
            (json!({"payer_client_ip": "1.2.3.4"}), "PARAM_ERROR"),
            (
                json!({"payer_client_ip": "1.2.3.4", "h5_info": {"type": "iOS", "app_name": "x"}}),
                "INVALID_REQUEST",
            ),
            (
                json!({"payer_client_ip": "1.2.3.4", "device_id": "d", "h5_info": {"type": "iOS"}}),
                "INVALID_REQUEST",
            ),
        ] {
            let mut h5 = base();
            h5["scene_info"] = scene.clone();
            assert_eq!(
                parse_order(&h5, Channel::H5).unwrap_err().code(),
                code,
                "{scene}"
            );
        }
    }

    #[test]
    fn private_fields_are_compared_but_never_printed() {
        let mut jsapi = base();
        jsapi["payer"] = json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"});
        let params = parse_order(&jsapi, Channel::Jsapi).unwrap();
        let mut other = jsapi.clone();
        other["payer"]["openid"] = json!("oOtherBuyer0000000000000000");
        assert_ne!(params, parse_order(&other, Channel::Jsapi).unwrap());
        assert!(!format!("{params:?}").contains("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"));
    }
}
