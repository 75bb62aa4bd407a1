//! The funnel as a standalone SVG picture: one centred bar per step, its width
//! proportional to the deals that reached it, labelled with the stage, the count and the
//! conversion.
//!
//! Rules the layout keeps (unit-tested below):
//! - A label is drawn inside its bar only when its estimated width fits between the
//!   bar's paddings; otherwise it goes to the right of the bar, and the picture widens to
//!   the right so that it never runs past the edge. Text width is estimated without a font: a Latin
//!   character counts 0.6 em, a CJK (wide) one 1.1 em, so estimates err on the wide side.
//! - Every text colour has a contrast of at least 4.5:1 (WCAG AA) against what is
//!   behind it: inside a bar the darker or the lighter ink, whichever contrasts more.
//! - All fixed words (title, footer, "won", "conversion") are in one language; stage and
//!   pipeline names are the pipeline's own and stay as they are.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::funnel::FunnelReport;
use super::math::Rate;

/// The language of the picture's fixed words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The language of a language tag's primary subtag (`zh-CN` → `zh`); `*` is English.
    pub fn of_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split('-').next().unwrap_or("").trim();
        if primary.eq_ignore_ascii_case("zh") {
            Some(Lang::Zh)
        } else if primary.eq_ignore_ascii_case("en") || primary == "*" {
            Some(Lang::En)
        } else {
            None
        }
    }

    fn title(self, pipeline: &str) -> String {
        match self {
            Lang::En => format!("Sales funnel · {pipeline}"),
            Lang::Zh => format!("销售漏斗 · {pipeline}"),
        }
    }

    /// What follows the stage name on its bar.
    fn step(self, reached: i64, won: bool, conversion: &Rate) -> String {
        if won {
            return match self {
                Lang::En => format!(" — {reached} won"),
                Lang::Zh => format!(" — 赢单 {reached}"),
            };
        }
        match (self, percent(conversion)) {
            (_, None) => format!(" — {reached}"),
            (Lang::En, Some(rate)) => format!(" — {reached} · conversion {rate}"),
            (Lang::Zh, Some(rate)) => format!(" — {reached} · 转化率 {rate}"),
        }
    }

    fn footer(self, total: i64, win: &Rate) -> String {
        let rate = percent(win).unwrap_or_else(|| "–".to_owned());
        match self {
            Lang::En if total == 1 => format!("1 deal · win rate {rate}"),
            Lang::En => format!("{total} deals · win rate {rate}"),
            Lang::Zh => format!("共 {total} 个商机 · 赢单率 {rate}"),
        }
    }
}

/// `25.0% (1/4)`; `None` without a denominator.
fn percent(rate: &Rate) -> Option<String> {
    rate.value.map(|v| {
        format!(
            "{:.1}% ({}/{})",
            v * 100.0,
            rate.numerator,
            rate.denominator
        )
    })
}

const MIN_WIDTH: f64 = 720.0;
/// The widest bar; the narrowest is 2 px so that an empty step still shows.
const BAR_SPAN: f64 = 520.0;
const BAR_H: f64 = 44.0;
const ROW_GAP: f64 = 10.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 40.0;
/// Clear space between the picture's edge and any text.
const MARGIN: f64 = 12.0;
/// Clear space between a label and its bar's edges.
const PAD: f64 = 8.0;
const LABEL_SIZE: f64 = 14.0;
const TITLE_SIZE: f64 = 20.0;
const FOOTER_SIZE: f64 = 13.0;
/// Longest stage or pipeline name drawn, in em; longer ones end in "…" (the full name
/// stays in the report).
const MAX_NAME_EM: f64 = 24.0;

const INK_DARK: &str = "#111827";
const INK_LIGHT: &str = "#ffffff";
const INK_MUTED: &str = "#374151";
const WON_FILL: &str = "#166534";
const FILLS: [&str; 6] = [
    "#93c5fd", "#7dd3fc", "#67e8f9", "#5eead4", "#6ee7b7", "#a7f3d0",
];

/// Wide (two-column) characters: CJK, Hangul, full-width forms, and the em dash, which
/// Latin fonts draw a full em wide too.
fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F
        | 0x2014
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1FAFF
        | 0x20000..=0x3FFFD)
}

fn char_em(c: char) -> f64 {
    if is_wide(c) {
        1.1
    } else {
        0.6
    }
}

/// Estimated width of `text` at `font_size` px.
pub fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().map(char_em).sum::<f64>() * font_size
}

/// `name` cut to at most `max_em` (ending in "…" when cut).
fn clip(name: &str, max_em: f64) -> String {
    if name.chars().map(char_em).sum::<f64>() <= max_em {
        return name.to_owned();
    }
    let mut used = char_em('…');
    let mut out = String::new();
    for c in name.chars() {
        used += char_em(c);
        if used > max_em {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// WCAG 2 relative luminance of `#rrggbb`.
fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)) / 255.0;
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
}

/// WCAG 2 contrast ratio between two `#rrggbb` colours (1 to 21).
pub fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// The ink that reads best on `fill`.
fn ink_on(fill: &str) -> &'static str {
    if contrast(INK_DARK, fill) >= contrast(INK_LIGHT, fill) {
        INK_DARK
    } else {
        INK_LIGHT
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Centred on `x` (inside the bar).
    Middle,
    /// Starting at `x` (right of the bar).
    Start,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub text: String,
    pub x: f64,
    pub anchor: Anchor,
    /// Estimated width in px.
    pub width: f64,
    pub ink: &'static str,
}

impl Label {
    /// Left and right edge of the text as estimated.
    pub fn extent(&self) -> (f64, f64) {
        match self.anchor {
            Anchor::Middle => (self.x - self.width / 2.0, self.x + self.width / 2.0),
            Anchor::Start => (self.x, self.x + self.width),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub fill: &'static str,
    pub label: Label,
    /// The unclipped label, for the tooltip.
    pub full: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub title: String,
    pub footer: String,
    /// Centres of the title and the footer: over the bars unless that would cut them.
    pub title_x: f64,
    pub footer_x: f64,
    pub bars: Vec<Bar>,
}

/// Places bars and labels (pure: the rules in the module comment are tested on it).
pub fn layout(r: &FunnelReport, pipeline: &str, lang: Lang) -> Layout {
    let max = r
        .stages
        .iter()
        .map(|s| s.reached_or_passed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let title = lang.title(&clip(pipeline, MAX_NAME_EM));
    let footer = lang.footer(r.total, &r.win_rate);
    // Bars stay centred where a picture of the least width has its middle; a label
    // beside a bar widens the picture to the right as far as it needs.
    let centre = MIN_WIDTH / 2.0;
    let mut width = MIN_WIDTH
        .max(text_width(&title, TITLE_SIZE) + 2.0 * MARGIN)
        .max(text_width(&footer, FOOTER_SIZE) + 2.0 * MARGIN);
    let mut rows = Vec::with_capacity(r.stages.len());
    for (i, s) in r.stages.iter().enumerate() {
        let won = s.kind == "won";
        let w = (s.reached_or_passed as f64 / max * BAR_SPAN).max(2.0);
        let rest = lang.step(s.reached_or_passed, won, &s.conversion_rate);
        let text = format!("{}{rest}", clip(&s.name, MAX_NAME_EM));
        let text_w = text_width(&text, LABEL_SIZE);
        let inside = text_w + 2.0 * PAD <= w;
        if !inside {
            width = width.max(centre + w / 2.0 + PAD + text_w + MARGIN);
        }
        let fill = if won {
            WON_FILL
        } else {
            FILLS[i % FILLS.len()]
        };
        rows.push((w, text, text_w, inside, fill, format!("{}{rest}", s.name)));
    }
    let bars = rows
        .into_iter()
        .enumerate()
        .map(|(i, (w, text, text_w, inside, fill, full))| {
            let x = centre - w / 2.0;
            let label = if inside {
                Label {
                    text,
                    x: centre,
                    anchor: Anchor::Middle,
                    width: text_w,
                    ink: ink_on(fill),
                }
            } else {
                Label {
                    text,
                    x: x + w + PAD,
                    anchor: Anchor::Start,
                    width: text_w,
                    ink: INK_DARK,
                }
            };
            Bar {
                x,
                y: TOP + i as f64 * (BAR_H + ROW_GAP),
                w,
                fill,
                label,
                full,
            }
        })
        .collect::<Vec<_>>();
    let over_bars = |text: &str, size: f64| centre.max(text_width(text, size) / 2.0 + MARGIN);
    Layout {
        width: width.ceil(),
        title_x: over_bars(&title, TITLE_SIZE),
        footer_x: over_bars(&footer, FOOTER_SIZE),
        height: TOP + (BAR_H + ROW_GAP) * bars.len() as f64 + BOTTOM,
        title,
        footer,
        bars,
    }
}

/// The picture of a funnel report, its fixed words in `lang`.
pub fn svg(r: &FunnelReport, pipeline: &str, lang: Lang) -> String {
    let l = layout(r, pipeline, lang);
    let (width, height) = (l.width, l.height);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" xml:lang=\"{lang}\" font-family=\"'Noto Sans CJK SC','PingFang SC','Microsoft YaHei',sans-serif\">\n\
         <title>{title}</title>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <text x=\"{title_x}\" y=\"32\" font-size=\"{TITLE_SIZE}\" text-anchor=\"middle\" fill=\"{INK_DARK}\">{title}</text>\n",
        lang = lang.as_str(),
        title = escape(&l.title),
        title_x = l.title_x,
    );
    for b in &l.bars {
        let anchor = match b.label.anchor {
            Anchor::Middle => "middle",
            Anchor::Start => "start",
        };
        out.push_str(&format!(
            "<g><title>{full}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR_H}\" rx=\"4\" fill=\"{fill}\"/>\n\
             <text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"{LABEL_SIZE}\" text-anchor=\"{anchor}\" fill=\"{ink}\">{text}</text></g>\n",
            full = escape(&b.full),
            x = b.x,
            y = b.y,
            w = b.w,
            fill = b.fill,
            lx = b.label.x,
            ly = b.y + BAR_H / 2.0 + 5.0,
            ink = b.label.ink,
            text = escape(&b.label.text),
        ));
    }
    out.push_str(&format!(
        "<text x=\"{}\" y=\"{:.1}\" font-size=\"{FOOTER_SIZE}\" text-anchor=\"middle\" fill=\"{INK_MUTED}\">{}</text>\n</svg>\n",
        l.footer_x,
        height - 14.0,
        escape(&l.footer),
    ));
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::funnel::{FunnelMode, FunnelStage};

    fn stage(name: &str, kind: &str, reached: i64, next: i64) -> FunnelStage {
        FunnelStage {
            stage_id: name.into(),
            name: name.into(),
            position: 0,
            kind: kind.into(),
            entered: reached,
            reached_or_passed: reached,
            advanced: next,
            conversion_rate: if kind == "won" {
                Rate::of(0, 0)
            } else {
                Rate::of(next, reached)
            },
            drop_off: reached - next,
            lost_here: 0,
        }
    }

    fn report(stages: Vec<FunnelStage>) -> FunnelReport {
        let total = stages.first().map_or(0, |s| s.reached_or_passed);
        let won = stages.last().map_or(0, |s| s.reached_or_passed);
        FunnelReport {
            pipeline_id: "p".into(),
            mode: FunnelMode::Cohort,
            from: None,
            to: None,
            total,
            stages,
            win_rate: Rate::of(won, total),
            segments: None,
            segments_truncated: None,
            other: None,
        }
    }

    fn sample() -> FunnelReport {
        report(vec![
            stage("A", "open", 400, 200),
            stage(
                "初步接触与需求调研阶段（含现场拜访和技术交流）",
                "open",
                200,
                9,
            ),
            stage(
                "A very long stage name that cannot fit on a narrow bar at all",
                "open",
                9,
                3,
            ),
            stage("签约", "won", 3, 0),
        ])
    }

    fn assert_fits(l: &Layout) {
        for (text, x, size) in [
            (&l.title, l.title_x, TITLE_SIZE),
            (&l.footer, l.footer_x, FOOTER_SIZE),
        ] {
            let half = text_width(text, size) / 2.0;
            assert!(x - half >= MARGIN && x + half <= l.width - MARGIN, "{text}");
        }
        for b in &l.bars {
            let (left, right) = b.label.extent();
            assert!(
                left >= MARGIN - 1e-9 && right <= l.width - MARGIN + 1e-9,
                "{:?} leaves a {} px picture",
                b.label,
                l.width
            );
            match b.label.anchor {
                Anchor::Middle => assert!(
                    left >= b.x + PAD - 1e-9 && right <= b.x + b.w - PAD + 1e-9,
                    "{:?} spills past its {} px bar",
                    b.label,
                    b.w
                ),
                Anchor::Start => assert!(
                    left >= b.x + b.w + PAD - 1e-9,
                    "{:?} overlaps its bar",
                    b.label
                ),
            }
        }
    }

    #[test]
    fn labels_never_spill_past_their_bars_or_the_picture() {
        for lang in [Lang::En, Lang::Zh] {
            let l = layout(&sample(), "Enterprise 2026", lang);
            assert_fits(&l);
            assert_eq!(l.bars[0].label.anchor, Anchor::Middle, "a short label fits");
            for narrow in &l.bars[1..] {
                assert_eq!(narrow.label.anchor, Anchor::Start, "{:?}", narrow.label);
            }
            assert!(l.width > MIN_WIDTH, "the picture widens for long labels");
        }
        let one = report(vec![stage(&"长".repeat(300), "open", 1, 0)]);
        let l = layout(&one, &"P".repeat(300), Lang::Zh);
        assert_fits(&l);
        assert!(
            l.bars[0].label.text.contains('…'),
            "very long names are cut"
        );
        assert!(l.title.ends_with('…'));
    }

    #[test]
    fn wide_characters_count_about_twice() {
        assert!(text_width("商务谈判", 10.0) > 1.8 * text_width("abcd", 10.0));
        assert_eq!(text_width("", 14.0), 0.0);
    }

    #[test]
    fn every_label_contrasts_with_what_is_behind_it() {
        assert!(contrast("#000000", "#ffffff") > 20.9);
        for fill in FILLS.iter().chain([&WON_FILL]) {
            assert!(
                contrast(ink_on(fill), fill) >= 4.5,
                "{fill}: {}",
                contrast(ink_on(fill), fill)
            );
        }
        for ink in [INK_DARK, INK_MUTED] {
            assert!(contrast(ink, "#ffffff") >= 4.5, "{ink} on the background");
        }
        let l = layout(
            &report(vec![stage("A", "open", 10, 5), stage("Won", "won", 5, 0)]),
            "P",
            Lang::En,
        );
        let won = &l.bars[1];
        assert_eq!(won.label.anchor, Anchor::Middle);
        assert_eq!(won.label.ink, INK_LIGHT, "light ink on the dark won bar");
        assert!(contrast(won.label.ink, won.fill) >= 4.5);
    }

    #[test]
    fn fixed_words_follow_the_language() {
        let r = report(vec![stage("A", "open", 4, 1), stage("B", "won", 1, 0)]);
        let en = svg(&r, "Pipeline <A>", Lang::En);
        assert!(en.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(en.contains("Pipeline &lt;A&gt;"));
        assert_eq!(en.matches("<rect ").count(), 1 + 2, "background + bars");
        assert!(en.contains("A — 4 · conversion 25.0% (1/4)"));
        assert!(en.contains("B — 1 won"));
        assert!(en.contains("4 deals · win rate 25.0% (1/4)"));
        let zh = svg(&r, "Pipeline <A>", Lang::Zh);
        assert!(zh.contains("A — 4 · 转化率 25.0% (1/4)"));
        assert!(zh.contains("共 4 个商机 · 赢单率 25.0% (1/4)"));
        for word in ["deals", "win rate", "conversion", "won", "Sales"] {
            assert!(!zh.contains(word), "{word} in the Chinese picture");
        }
    }
}
