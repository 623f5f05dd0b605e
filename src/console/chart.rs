//! The overview's daily bar chart as inline SVG, drawn here rather than by a charting crate:
//! each bar carries its own `<title>`, which every browser shows as a tooltip with no script
//! (plotters' SVG backend cannot attach one to a bar), and the labels are text the page's
//! font renders, so Chinese needs no font file on the server. Presentation attributes only:
//! the page's CSP allows no inline style.

use maud::{Markup, html};

use super::page::yuan;
use crate::domain::Fen;

/// One day's bars: a label (`12-06`) and the amount per series, in series order.
pub struct Day {
    pub label: String,
    pub amounts: Vec<Fen>,
}

/// A series: its CSS class (its colour) and its name in the legend and tooltips.
pub struct Series {
    pub class: &'static str,
    pub name: &'static str,
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 240;
const LEFT: u32 = 70;
const BOTTOM: u32 = 24;
const TOP: u32 = 16;

/// Stacked bars, one stack per day; the axis runs from zero to the largest day.
pub fn stacked_bars(days: &[Day], series: &[Series]) -> Markup {
    let totals: Vec<i64> = days
        .iter()
        .map(|d| d.amounts.iter().map(|a| a.get()).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_h = f64::from(HEIGHT - TOP - BOTTOM);
    let slot = f64::from(WIDTH - LEFT - 10) / days.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let y_of = |fen: i64| plot_h * fen as f64 / max as f64;
    let top_label = Fen::new(max).map(yuan).unwrap_or_default();
    // Each day's stack, bottom up: (series, amount, y, height).
    let stacks: Vec<Vec<(&Series, Fen, f64, f64)>> = days
        .iter()
        .map(|day| {
            let mut base = 0i64;
            series
                .iter()
                .zip(&day.amounts)
                .filter(|(_, a)| a.get() > 0)
                .map(|(s, &a)| {
                    let h = y_of(a.get());
                    let y = f64::from(TOP) + plot_h - y_of(base) - h;
                    base += a.get();
                    (s, a, y, h)
                })
                .collect()
        })
        .collect();
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            role="img" aria-label="每日收款金额" {
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - 10) y2=(HEIGHT - BOTTOM) {}
            text x=(LEFT - 6) y=(TOP + 4) text-anchor="end" { (top_label) }
            text x=(LEFT - 6) y=(HEIGHT - BOTTOM) text-anchor="end" { "¥0" }
            @for (i, (day, stack)) in days.iter().zip(&stacks).enumerate() {
                @let x = f64::from(LEFT) + slot * i as f64 + (slot - bar_w) / 2.0;
                g {
                    @for (s, amount, y, h) in stack {
                        rect class=(format!("bar-{}", s.class)) x=(fmt(x)) y=(fmt(*y))
                            width=(fmt(bar_w)) height=(fmt(*h)) {
                            title { (day.label) " " (s.name) " " (yuan(*amount)) }
                        }
                    }
                    @if i % 5 == 0 || i + 1 == days.len() {
                        text x=(fmt(x + bar_w / 2.0)) y=(HEIGHT - 8) text-anchor="middle" { (day.label) }
                    }
                }
            }
        }
    }
}

/// Coordinates to one decimal: enough for a screen, short in the page.
fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bar_has_its_tooltip_and_no_inline_style() {
        let f = |fen| Fen::new(fen).unwrap();
        let svg = stacked_bars(
            &[
                Day {
                    label: "12-05".into(),
                    amounts: vec![f(19900), f(0)],
                },
                Day {
                    label: "12-06".into(),
                    amounts: vec![f(9900), f(59900)],
                },
            ],
            &[
                Series {
                    class: "wechatpay",
                    name: "微信支付",
                },
                Series {
                    class: "alipay",
                    name: "支付宝",
                },
            ],
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("<title>12-06 支付宝 ¥599.00</title>"), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
    }
}
