//! The page's HTML, with maud: every value is escaped as it is written, and no element carries
//! inline script or style (the Content-Security-Policy forbids both). State is never told by
//! colour alone: every badge has words.

use axum::http::StatusCode;
use hashsieve_core::preview::RevealStep;
use hashsieve_triage::model::{Basis, Event, EventKind, Item, ItemState, ListMatch, VerdictKind};
use maud::{DOCTYPE, Markup, html};

use super::content::{Member, Queue, ShownGroup};
use super::preferences::{FIRST_STEPS, Preferences, SIZES};
use super::{Header, Order};

/// The keyboard shortcuts, as the page lists them (the script binds the same keys).
const SHORTCUTS: &[(&str, &str)] = &[
    ("r", "reveal the next step (less blur, sharp, colour, full size)"),
    ("b", "back to the first step (blurred, or your own default)"),
    ("1–9", "illegal, in the hotline's category of that number"),
    ("l", "legal"),
    ("u", "unclear"),
    ("x", "select or unselect the focused member for a split"),
    ("j / k", "focus the next / previous member"),
    ("v", "show the focused member in the preview, blurred"),
    ("s", "split the selected members into a group of their own"),
    ("z", "undo the verdict just given"),
    ("n", "skip to the next group"),
    ("q", "back to the queue"),
];

pub(super) fn settings(header: &Header, preferences: Preferences, saved: bool) -> Markup {
    layout(
        "Settings",
        Some(header),
        html! {
            h1 { "Your settings" }
            @if saved { p class="alert" role="status" { "Saved." } }
            p { "How previews start for you. Whatever you choose, every view past the blurred step counts as an image revealed." }
            form method="post" action="/review/settings" class="settings" {
                input type="hidden" name="csrf" value=(header.csrf);
                fieldset {
                    legend { "Previews start" }
                    @for step in FIRST_STEPS {
                        div {
                            input type="radio" name="first_step" value=(step.as_str()) id={ "first-" (step.as_str()) }
                                checked[step == preferences.first_step];
                            label for={ "first-" (step.as_str()) } { (step_words(step)) }
                        }
                    }
                }
                label for="preview-pixels" { "Preview size, longest side" }
                select name="preview_pixels" id="preview-pixels" {
                    @for size in sizes(preferences.preview_pixels) {
                        option value=(size) selected[size == preferences.preview_pixels] { (size) " pixels" }
                    }
                }
                button type="submit" { "Save" }
            }
        },
    )
}

fn step_words(step: RevealStep) -> &'static str {
    match step {
        RevealStep::Blurred => "blurred, in greyscale (the safest)",
        RevealStep::Softened => "lightly blurred, in greyscale",
        RevealStep::Greyscale => "sharp, in greyscale",
        RevealStep::Colour => "sharp, in colour",
        RevealStep::FullSize => "at full size",
    }
}

/// The sizes offered, with the current one if the hotline's default is another.
fn sizes(current: u32) -> Vec<u32> {
    let mut sizes = SIZES.to_vec();
    if !sizes.contains(&current) {
        sizes.push(current);
        sizes.sort_unstable();
    }
    sizes
}

pub(super) fn verdict_name(kind: &VerdictKind) -> String {
    match kind {
        VerdictKind::Illegal { category } => format!("illegal ({category})"),
        VerdictKind::Legal => "legal".to_string(),
        VerdictKind::Unclear => "unclear".to_string(),
    }
}

fn layout(title: &str, header: Option<&Header>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " — hashsieve review" }
                link rel="stylesheet" href="/review/assets/review.css";
                script src="/review/assets/review.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to the content" }
                @if let Some(header) = header {
                    header class="bar" {
                        a href="/review/" { "Queue" }
                        a href="/review/settings" { "Settings" }
                        span { "Signed in as " strong { (header.analyst) } }
                        span id="revealed" { "Images revealed today: " strong { (header.revealed_today) } }
                        form method="post" action="/review/sign-out" {
                            input type="hidden" name="csrf" value=(header.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                    @if let Some((last, left)) = &header.undo {
                        div class="undo" role="status" {
                            form method="post" action="/review/undo" id="undo" {
                                input type="hidden" name="csrf" value=(header.csrf);
                                "Group " (last.group.0) " judged " strong { (last.verdict) } " ("
                                (last.items.len()) " items). "
                                button type="submit" { "Undo (z)" } " — for " (left) " more seconds."
                            }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

pub(super) fn error_page(status: StatusCode, detail: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    layout(
        title,
        None,
        html! {
            h1 { (status.as_u16()) " " (title) }
            p role="alert" { (detail) }
            p { a href="/review/" { "Back to the queue" } }
        },
    )
}

pub(super) fn sign_in(failure: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in to review" }
            @if let Some(failure) = failure {
                p role="alert" class="alert" { (failure) }
            }
            form method="post" action="/review/sign-in" class="sign-in" {
                label for="token" { "Your review token" }
                input id="token" name="token" type="password" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn age(reported_ms: u64) -> String {
    let seconds = hashsieve_core::clock::now_ms().saturating_sub(reported_ms) / 1000;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86_400 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86_400),
    }
}

/// A share, 0..=1, as a whole percentage.
fn percent(share: f32) -> String {
    format!("{:.0}%", share * 100.0)
}

fn time(at_ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms))
}

pub(super) fn queue(
    header: &Header,
    queue: &Queue,
    order: Order,
    number: usize,
    sources: &[String],
) -> Markup {
    let order_name = |o: Order| match o {
        Order::Oldest => "oldest",
        Order::Largest => "largest",
        Order::Priority => "priority",
    };
    let mut orders = vec![
        (Order::Oldest, "oldest first".to_string()),
        (Order::Largest, "largest groups first".to_string()),
    ];
    if !sources.is_empty() {
        orders.push((Order::Priority, format!("reported by {} first", sources.join(", "))));
    }
    layout(
        "Queue",
        Some(header),
        html! {
            h1 { "Review queue" }
            p { (queue.pending) " groups await review." }
            nav aria-label="Order" {
                "Order: "
                @for (o, label) in &orders {
                    @if *o == order {
                        strong aria-current="true" { (label) }
                    } @else {
                        a href={ "/review/?order=" (order_name(*o)) } { (label) }
                    }
                    " "
                }
            }
            @if queue.groups.is_empty() {
                p { "Nothing to review." }
            } @else {
                table class="queue" {
                    caption { "Pending groups" }
                    thead { tr {
                        th scope="col" { "Group" } th scope="col" { "Items" } th scope="col" { "Waiting" }
                        th scope="col" { "First reported at" } th scope="col" { "Hints" }
                    } }
                    tbody {
                        @for group in &queue.groups {
                            tr {
                                td { a href={ "/review/groups/" (group.group.0) } { "Group " (group.group.0) } }
                                td { (group.members) }
                                td { (age(group.oldest_report_ms)) }
                                td class="source" { (group.first_source.as_deref().unwrap_or("—")) }
                                td { @if group.hinted { span class="badge" { "near a list entry" } } @else { "—" } }
                            }
                        }
                    }
                }
                @if queue.more {
                    @let next = match order {
                        Order::Oldest => format!("/review/?order=oldest&after={}", queue.groups.last().map_or(0, |g| g.group.0)),
                        Order::Largest | Order::Priority => format!("/review/?order={}&page={}", order_name(order), number + 1),
                    };
                    p { a href=(next) rel="next" { "More groups" } }
                }
                p { a href={ "/review/groups/" (queue.groups[0].group.0) } id="start" { "Start with the first group" } }
            }
        },
    )
}

fn list_match(hint: &ListMatch) -> Markup {
    html! {
        li {
            "List " strong { (hint.list) } ", " (hint.kind) " at distance " (hint.distance)
            @if let Some(category) = &hint.category { ", category " (category) }
            @if let Some(entry) = &hint.entry_id { ", entry " code { (entry) } }
            @if let Some(via) = &hint.via {
                ", through report " code { (via.report) } " (this picture recognised as its content by "
                (via.how.as_str())
                @if let Some(alignment) = &via.alignment {
                    ": " (alignment.agreeing) " agreeing points, " (percent(alignment.stored_coverage)) " of it covered"
                }
                "; its own PDQ distance " (via.pdq_distance) ")"
            } @else if let Some(report) = &hint.via_report { ", through report " code { (report) } }
        }
    }
}

fn basis(basis: &Basis) -> Markup {
    match basis {
        Basis::Direct => html! { "directly" },
        Basis::Group { group, representative } => {
            html! { "through group " (group.0) ", shown by item " (representative.0) }
        }
        Basis::Inherited { from, distance, how } => {
            html! { "inherited from item " (from.0) " (" (how.as_str()) ", distance " (distance) ")" }
        }
    }
}

fn event(event: &Event) -> Markup {
    html! {
        li {
            time { (time(event.at_ms)) } ": "
            @match &event.what {
                EventKind::Submitted { report, source } => { "reported as " code { (report) } " from " (source) }
                EventKind::Grouped { group, why } => { "grouped in " (group.0) " (" (format!("{why:?}")) ")" }
                EventKind::Assessed { verdict } => {
                    "judged " strong { (verdict_name(&verdict.kind)) } " by " (verdict.analyst) ", " (basis(&verdict.basis))
                }
                EventKind::Inherited { verdict } => {
                    "inherited " strong { (verdict_name(&verdict.kind)) } ", " (basis(&verdict.basis))
                }
                EventKind::Reopened { group, analyst, note } => {
                    "verdict taken back by " (analyst) " (" (note) "), back in group " (group.0)
                }
                EventKind::Exported { list, category } => {
                    @match category {
                        Some(category) => { "exported to " (list) " as " (category) }
                        None => { "withdrawn from " (list) }
                    }
                }
                EventKind::Known { report, .. } => { "known from a list, report " code { (report) } }
            }
        }
    }
}

fn member_row(member: &Member, representative: bool) -> Markup {
    let item = &member.item;
    html! {
        tr class="member" tabindex="-1" data-item=(item.id.0) {
            td {
                input type="checkbox" form="split" name="item" value=(item.id.0)
                    id={ "member-" (item.id.0) } disabled[representative];
                label for={ "member-" (item.id.0) } class="visually-hidden" { "Select item " (item.id.0) " for a split" }
            }
            th scope="row" {
                "Item " (item.id.0)
                @if representative { " " span class="badge" { "shown" } }
            }
            td { @match member.distance { Some(d) => { (d) " bits" } None => { "—" } } }
            td { (item.size) " bytes" }
            td {
                ul class="reports" {
                    @for report in &member.reports {
                        li {
                            span class="source" { (report.source) }
                            " (" (report.id) ", " (age(report.reported_ms)) " ago"
                            @if let Some(country) = report.location.as_ref().and_then(|l| l.hosting.as_ref()).and_then(|h| h.country.as_ref()) {
                                ", hosted in " (country)
                            }
                            ")"
                        }
                    }
                }
            }
            td {
                // The script shows the member in the preview above, to be revealed step by
                // step like the representative; without it the link opens the blurred step.
                a href={ "/review/items/" (item.id.0) "/preview/" (RevealStep::FIRST.as_str()) }
                    class="view" data-item=(item.id.0) { "Show item " (item.id.0) " blurred (v)" }
            }
        }
    }
}

fn hashes(item: &Item) -> Markup {
    html! {
        dl class="hashes" {
            @if let Some(sha256) = item.digests.sha256 { dt { "SHA-256" } dd { code { (hex::encode(sha256)) } } }
            @if let Some(md5) = item.digests.md5 { dt { "MD5" } dd { code { (hex::encode(md5)) } } }
            @if let Some(pdq) = item.pdq { dt { "PDQ" } dd { code { (pdq.hash.to_hex()) } " (quality " (pdq.quality) ")" } }
        }
    }
}

pub(super) fn group(
    header: &Header,
    shown: &ShownGroup,
    categories: &[String],
    preferences: Preferences,
) -> Markup {
    let first = preferences.first_step;
    let steps: Vec<&str> = preferences.steps().map(RevealStep::as_str).collect();
    let group = &shown.group;
    let pending = matches!(group.state, hashsieve_triage::model::GroupState::Pending);
    let representative = shown.members.iter().find(|member| member.item.id == shown.representative);
    layout(
        &format!("Group {}", group.id.0),
        Some(header),
        html! {
            h1 { "Group " (group.id.0) }
            p {
                (group.members.len()) " items, " (format!("{:?}", group.state).to_lowercase())
                @if let Some(from) = group.split_from { ", split from group " (from.0) }
                "."
            }
            @if let Some(shown_member) = representative {
                section class="preview" aria-label="The group's representative" {
                    figure {
                        img id="preview" src={ "/review/items/" (shown_member.item.id.0) "/preview/" (first.as_str()) }
                            alt={ "Item " (shown_member.item.id.0) ", preview at step " (first.as_str()) }
                            data-item=(shown_member.item.id.0)
                            data-steps=(steps.join(" "));
                        figcaption {
                            "Item " span id="shown-item" { (shown_member.item.id.0) } ". Step: " span id="step" { (first.as_str()) } ". "
                            button type="button" id="reveal" { "Reveal more (r)" }
                            " "
                            button type="button" id="reblur" { "Blur again (b)" }
                        }
                    }
                    p class="unavailable" hidden { "The content is no longer available; its hashes are below." }
                    (hashes(&shown_member.item))
                    @if !shown_member.item.near_list_matches.is_empty() {
                        h2 { "Hints: near list entries" }
                        ul { @for hint in &shown_member.item.near_list_matches { (list_match(hint)) } }
                    }
                }
            }
            @if pending {
                section aria-label="Verdict" {
                    h2 { "Verdict for every item of the group" }
                    div class="verdicts" {
                        @for (n, category) in categories.iter().enumerate() {
                            form method="post" action={ "/review/groups/" (group.id.0) "/verdict" } data-key=(n + 1) {
                                input type="hidden" name="csrf" value=(header.csrf);
                                input type="hidden" name="kind" value="illegal";
                                input type="hidden" name="category" value=(category);
                                button type="submit" { "Illegal: " (category) " (" (n + 1) ")" }
                            }
                        }
                        form method="post" action={ "/review/groups/" (group.id.0) "/verdict" } data-key="l" {
                            input type="hidden" name="csrf" value=(header.csrf);
                            input type="hidden" name="kind" value="legal";
                            button type="submit" { "Legal (l)" }
                        }
                        form method="post" action={ "/review/groups/" (group.id.0) "/verdict" } data-key="u" {
                            input type="hidden" name="csrf" value=(header.csrf);
                            input type="hidden" name="kind" value="unclear";
                            button type="submit" { "Unclear (u)" }
                        }
                    }
                    p { a href={ "/review/next?after=" (group.id.0) } id="skip" { "Skip to the next group (n)" } }
                }
            }
            section aria-label="Members" {
                h2 { "Members and where they were reported" }
                form method="post" action={ "/review/groups/" (group.id.0) "/split" } id="split" {
                    input type="hidden" name="csrf" value=(header.csrf);
                }
                table class="members" {
                    caption { "Distance is between PDQ hashes, of 256 bits, to the item shown." }
                    thead { tr {
                        th scope="col" { span class="visually-hidden" { "Select" } }
                        th scope="col" { "Item" } th scope="col" { "Distance" } th scope="col" { "Size" }
                        th scope="col" { "Reports" } th scope="col" { "Content" }
                    } }
                    tbody {
                        @for member in &shown.members {
                            (member_row(member, member.item.id == shown.representative))
                        }
                    }
                }
                @if pending && shown.members.len() > 1 {
                    button type="submit" form="split" { "Split the selected into a group of their own (s)" }
                }
            }
            section aria-label="History" {
                h2 { "History" }
                @for member in &shown.members {
                    details {
                        summary { "Item " (member.item.id.0) ": " (member.history.len()) " events"
                            @if let ItemState::Pending { .. } = member.item.state { ", pending" } }
                        ol { @for entry in &member.history { (event(entry)) } }
                    }
                }
            }
            section class="shortcuts" aria-label="Keyboard shortcuts" {
                h2 { "Keyboard shortcuts" }
                dl { @for (key, what) in SHORTCUTS { dt { kbd { (key) } } dd { (what) } } }
            }
        },
    )
}
