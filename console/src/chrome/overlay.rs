//! The overlays above the screen, at most one at a time: the key help, the command palette, a
//! one-line prompt, a chooser and a yes/no confirmation. An overlay takes every key while it
//! is open and answers with what the console should do ([`Answer`]).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Stylize;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use tui_textarea::TextArea;
use uuid::Uuid;

use amal_engine::lang::Lang;
use amal_engine::tickets::{Tier, Triage};

use crate::action::{self, Action, Scope};
use crate::data::Command;
use crate::screens::ScreenId;
use crate::screens::admin::AdminEdit;
use crate::theme::{Theme, ThemeKey};
use crate::widgets::{block, centered, draw_edit};

use super::key_style;
use super::picker::{DocumentStep, DocumentView, PickKey, Picker, PickerPurpose};

/// What a prompt's text is for.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptPurpose {
    /// The current list's text filter.
    Filter(ScreenId),
    /// The reason for moving the ticket to the tier.
    EscalateReason(String, Tier),
    /// Resolution notes.
    ResolveNotes(String),
    /// Why a document is rejected.
    RejectReason(Uuid),
    /// Why a crisis ticket waits for the person.
    PendingReason(String),
    /// Why a ticket is re-triaged so.
    TriageReason(String, Triage),
    /// An admin screen edit.
    Admin(AdminEdit),
    /// A canned reply's title (a new one when no id), in a language.
    CannedTitle(Option<Uuid>, Lang),
    /// A canned reply's text (the multi-line editor), after its title.
    CannedBody(Option<Uuid>, Lang, String),
}

/// A one-line text prompt.
pub struct Prompt {
    /// What it is for.
    pub purpose: PromptPurpose,
    /// The question.
    pub title: String,
    /// The text.
    pub input: TextArea<'static>,
}

/// What a chooser picks.
#[derive(Debug, Clone, PartialEq)]
pub enum ChooserPurpose {
    /// The tier to escalate the ticket to.
    Tier(String),
    /// What of the ticket to re-triage.
    TriageField(String),
    /// The re-triaged field's new value.
    TriageValue(String, String),
    /// A theme.
    Theme,
    /// An admin screen edit.
    Admin(AdminEdit),
    /// The language of a new canned reply.
    CannedLang,
}

/// A pick from a short list.
#[derive(Debug, Clone)]
pub struct Chooser {
    /// What it is for.
    pub purpose: ChooserPurpose,
    /// Title.
    pub title: String,
    /// The options.
    pub options: Vec<String>,
    /// The highlighted one.
    pub selected: usize,
}

/// What a confirmation confirms.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// A change.
    Command(Command),
    /// Quitting with unsent drafts.
    Quit,
    /// Sending the ticket's draft as a public reply right after an internal note.
    SendPublic(String),
}

/// Overlays above the screen; at most one.
pub enum Overlay {
    /// The key help.
    Help,
    /// The command palette: typed text and the highlighted command.
    Palette(String, usize),
    /// A text prompt.
    Prompt(Box<Prompt>),
    /// A pick from a list.
    Chooser(Chooser),
    /// A yes/no question.
    Confirm(String, Confirmed),
    /// A filterable pick of staff or canned replies.
    Picker(Box<Picker>),
    /// A knowledge document read before review.
    Document(Box<DocumentView>),
    /// A multi-line text (a canned reply's): Enter is a new line, Ctrl-S saves.
    Editor(Box<Prompt>),
}

/// What the console does once an overlay has taken a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Nothing more.
    Nothing,
    /// A palette command.
    Perform(Action),
    /// Go to the ticket with this number (from the palette).
    GoTo(String),
    /// A prompt's text, trimmed.
    Text(PromptPurpose, String),
    /// A chooser's pick.
    Choice(ChooserPurpose, String),
    /// A yes.
    Yes(Confirmed),
    /// A picker's row (or Ctrl-N on the canned replies' manager).
    Picked(PickerPurpose, PickKey, Option<String>),
    /// What the reader of a document asked for.
    Document(DocumentStep),
}

impl Overlay {
    /// A prompt for `purpose` with `initial` text and the cursor at its end.
    pub fn prompt(purpose: PromptPurpose, title: impl Into<String>, initial: &str) -> Overlay {
        let mut input = TextArea::new(vec![initial.to_string()]);
        input.move_cursor(tui_textarea::CursorMove::End);
        Overlay::Prompt(Box::new(Prompt {
            purpose,
            title: title.into(),
            input,
        }))
    }

    /// The multi-line editor for `purpose`, holding `initial`.
    pub fn editor(purpose: PromptPurpose, title: impl Into<String>, initial: &str) -> Overlay {
        let mut input = TextArea::new(initial.lines().map(String::from).collect());
        input.move_cursor(tui_textarea::CursorMove::Bottom);
        input.move_cursor(tui_textarea::CursorMove::End);
        Overlay::Editor(Box::new(Prompt {
            purpose,
            title: title.into(),
            input,
        }))
    }

    /// A yes/no question before a change.
    pub fn confirm(text: impl Into<String>, command: Command) -> Overlay {
        Overlay::Confirm(text.into(), Confirmed::Command(command))
    }

    /// Takes a key; gives back the overlay if it stays open, and what to do. `scopes` are the
    /// current screen's, for the palette.
    pub fn key(self, key: KeyEvent, scopes: &[Scope]) -> (Option<Overlay>, Answer) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let nothing = |overlay| (Some(overlay), Answer::Nothing);
        match self {
            Overlay::Help => match key.code {
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') => (None, Answer::Nothing),
                _ => nothing(Overlay::Help),
            },
            Overlay::Palette(mut text, selected) => {
                let commands = palette_commands(scopes, &text);
                let offset = usize::from(ticket_number(&text).is_some());
                match key.code {
                    KeyCode::Esc => (None, Answer::Nothing),
                    KeyCode::Enter => match ticket_number(&text) {
                        Some(n) if selected == 0 => (None, Answer::GoTo(n)),
                        _ => match selected.checked_sub(offset).and_then(|i| commands.get(i)) {
                            Some((_, _, action)) => (None, Answer::Perform(*action)),
                            None => (None, Answer::Nothing),
                        },
                    },
                    KeyCode::Up => nothing(Overlay::Palette(text, selected.saturating_sub(1))),
                    KeyCode::Down => {
                        let last = (commands.len() + offset).saturating_sub(1);
                        nothing(Overlay::Palette(text, (selected + 1).min(last)))
                    }
                    KeyCode::Backspace => {
                        text.pop();
                        nothing(Overlay::Palette(text, 0))
                    }
                    KeyCode::Char(c) if !ctrl => {
                        text.push(c);
                        nothing(Overlay::Palette(text, 0))
                    }
                    _ => nothing(Overlay::Palette(text, selected)),
                }
            }
            Overlay::Prompt(mut prompt) => match key.code {
                // Leaving a filter's prompt clears the filter, as an empty one does.
                KeyCode::Esc => match prompt.purpose {
                    PromptPurpose::Filter(_) => (None, Answer::Text(prompt.purpose, String::new())),
                    _ => (None, Answer::Nothing),
                },
                KeyCode::Enter => {
                    let text = prompt.input.lines().join(" ").trim().to_string();
                    (None, Answer::Text(prompt.purpose, text))
                }
                _ => {
                    prompt.input.input(key);
                    nothing(Overlay::Prompt(prompt))
                }
            },
            Overlay::Chooser(mut chooser) => match key.code {
                KeyCode::Esc | KeyCode::Char('q') => (None, Answer::Nothing),
                KeyCode::Up | KeyCode::Char('k') => {
                    chooser.selected = chooser.selected.saturating_sub(1);
                    nothing(Overlay::Chooser(chooser))
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    chooser.selected = (chooser.selected + 1).min(chooser.options.len() - 1);
                    nothing(Overlay::Chooser(chooser))
                }
                KeyCode::Enter => {
                    let choice = chooser.options[chooser.selected].clone();
                    (None, Answer::Choice(chooser.purpose, choice))
                }
                _ => nothing(Overlay::Chooser(chooser)),
            },
            Overlay::Picker(mut picker) => match key.code {
                KeyCode::Esc => (None, Answer::Nothing),
                _ => match picker.key(key) {
                    Some((how, value)) => {
                        (None, Answer::Picked(picker.purpose.clone(), how, value))
                    }
                    None => nothing(Overlay::Picker(picker)),
                },
            },
            Overlay::Document(mut view) => match view.key(key) {
                DocumentStep::Stay => nothing(Overlay::Document(view)),
                step => (None, Answer::Document(step)),
            },
            Overlay::Editor(mut editor) => match key.code {
                KeyCode::Esc => (None, Answer::Nothing),
                KeyCode::Char('s') if ctrl => {
                    let text = editor.input.lines().join("\n").trim().to_string();
                    (None, Answer::Text(editor.purpose, text))
                }
                _ => {
                    editor.input.input(key);
                    nothing(Overlay::Editor(editor))
                }
            },
            Overlay::Confirm(text, confirmed) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    (None, Answer::Yes(confirmed))
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => (None, Answer::Nothing),
                _ => nothing(Overlay::Confirm(text, confirmed)),
            },
        }
    }

    /// Pasted text: into a prompt (on one line) or the palette; other overlays ignore it.
    pub fn paste(&mut self, text: &str) {
        let one_line = text.replace("\r\n", " ").replace(['\r', '\n'], " ");
        match self {
            Overlay::Prompt(prompt) => {
                prompt.input.insert_str(one_line);
            }
            Overlay::Palette(typed, selected) => {
                typed.push_str(&one_line);
                *selected = 0;
            }
            Overlay::Editor(editor) => {
                editor
                    .input
                    .insert_str(text.replace("\r\n", "\n").replace('\r', "\n"));
            }
            Overlay::Picker(picker) => {
                picker.query.push_str(&one_line);
                picker.selected = 0;
            }
            _ => {}
        }
    }

    /// Draws the overlay over `area`. `screen` is the one beneath, for the help and palette;
    /// `reorder` shows typed Arabic in reading order.
    pub fn draw(
        &self,
        frame: &mut Frame,
        area: Rect,
        theme: &Theme,
        screen: ScreenId,
        reorder: bool,
    ) {
        match self {
            Overlay::Help => draw_help(frame, area, theme, screen),
            Overlay::Palette(text, selected) => {
                let commands = palette_commands(&screen.scopes(), text);
                let mut options: Vec<String> = Vec::new();
                if let Some(n) = ticket_number(text) {
                    options.push(format!("{:>9}  go to ticket {n}", "Enter"));
                }
                options.extend(
                    commands
                        .iter()
                        .map(|(key, help, _)| format!("{key:>9}  {help}")),
                );
                let rect = centered(
                    area,
                    50,
                    (options.len() as u16 + 3).clamp(4, area.height.saturating_sub(2).max(4)),
                );
                let mut lines = vec![Line::from(vec![
                    Span::styled(":", theme.fg(ThemeKey::FooterKey)),
                    Span::raw(text.clone()),
                    Span::styled("▏", theme.fg(ThemeKey::BaseBorderFocus)),
                ])];
                // The options scroll so that the highlighted one stays in the box.
                let room = usize::from(rect.height.saturating_sub(3)).max(1);
                let skip = selected.saturating_sub(room - 1);
                let window: Vec<String> = options.into_iter().skip(skip).collect();
                lines.extend(option_lines(theme, &window, selected - skip));
                draw_pane(frame, rect, theme, " Command (or a ticket number) ", lines);
            }
            Overlay::Prompt(prompt) => {
                let rect = centered(area, 64, 3);
                frame.render_widget(Clear, rect);
                let b = block(
                    theme,
                    format!(" {} (Enter: ok, Esc: cancel) ", prompt.title),
                    true,
                );
                let inner = b.inner(rect);
                frame.render_widget(b, rect);
                draw_edit(frame, inner, theme, &prompt.input, reorder, "");
            }
            Overlay::Picker(picker) => picker.draw(frame, area, theme, reorder),
            Overlay::Document(view) => view.draw(frame, area, theme, reorder),
            Overlay::Editor(editor) => {
                let rect = centered(area, 72, area.height.saturating_sub(6).clamp(5, 14));
                frame.render_widget(Clear, rect);
                let b = block(theme, format!(" {} ", editor.title), true).title_bottom(Line::from(
                    Span::styled(
                        " Enter new line · Ctrl-S save · Esc cancel ",
                        key_style(theme),
                    ),
                ));
                let inner = b.inner(rect);
                frame.render_widget(b, rect);
                draw_edit(frame, inner, theme, &editor.input, reorder, "");
            }
            Overlay::Chooser(chooser) => {
                let rect = centered(area, 40, chooser.options.len() as u16 + 2);
                let lines = option_lines(theme, &chooser.options, chooser.selected);
                draw_pane(frame, rect, theme, format!(" {} ", chooser.title), lines);
            }
            Overlay::Confirm(text, _) => {
                // The question's lines (wrapped to the box), a blank line and the answers.
                let text_lines = (text.chars().count() / 50 + 1) as u16;
                let rect = centered(area, 60, text_lines + 4);
                frame.render_widget(Clear, rect);
                frame.render_widget(
                    Paragraph::new(Text::from(vec![
                        Line::from(text.clone()),
                        Line::default(),
                        Line::from(vec![
                            Span::styled("y", theme.fg(ThemeKey::FooterKey).bold()),
                            Span::raw(" yes   "),
                            Span::styled("n", theme.fg(ThemeKey::FooterKey).bold()),
                            Span::raw(" no"),
                        ]),
                    ]))
                    .wrap(Wrap { trim: true })
                    .block(block(theme, " Confirm ", true)),
                    rect,
                );
            }
        }
    }
}

/// The palette's commands for the scopes that match the typed text, with their keys.
pub fn palette_commands(scopes: &[Scope], text: &str) -> Vec<(String, &'static str, Action)> {
    let text = text.to_lowercase();
    action::commands(scopes)
        .into_iter()
        .filter(|(_, help, _)| help.to_lowercase().contains(&text))
        .collect()
}

/// The ticket the palette's text names: `TKT-2026-000123`, or the number alone (`123`,
/// this year's), else `None`.
pub fn ticket_number(text: &str) -> Option<String> {
    let t = text.trim().to_uppercase();
    if let Some(rest) = t.strip_prefix("TKT-") {
        let (year, n) = rest.split_once('-')?;
        let ok = year.len() == 4
            && year.chars().all(|c| c.is_ascii_digit())
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit());
        return ok.then(|| format!("TKT-{year}-{:0>6}", n));
    }
    if !t.is_empty() && t.len() <= 9 && t.chars().all(|c| c.is_ascii_digit()) {
        let year = chrono::Utc::now().format("%Y");
        return Some(format!("TKT-{year}-{t:0>6}"));
    }
    None
}

/// A list of options, one a line, the selected one highlighted.
fn option_lines<'a>(theme: &Theme, options: &[impl AsRef<str>], selected: usize) -> Vec<Line<'a>> {
    options
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let style = if i == selected {
                theme.selection()
            } else {
                theme.fg(ThemeKey::BaseText)
            };
            Line::from(Span::styled(format!(" {}", o.as_ref()), style))
        })
        .collect()
}

/// Lines in a focused pane that clears what is beneath it.
fn draw_pane<'a>(
    frame: &mut Frame,
    rect: Rect,
    theme: &Theme,
    title: impl Into<Line<'a>>,
    lines: Vec<Line<'a>>,
) {
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(block(theme, title, true)), rect);
}

/// The key help of the screen beneath, in as many columns as the height needs, so the whole
/// key map fits at 80x24.
fn draw_help(frame: &mut Frame, area: Rect, theme: &Theme, screen: ScreenId) {
    let entries = action::entries(&screen.scopes(), false);
    let rows = usize::from(area.height.saturating_sub(4)).max(1);
    let columns = entries.len().div_ceil(rows).max(1);
    let rows = entries.len().div_ceil(columns);
    let col_width = 36u16;
    let width = (col_width * columns as u16 + 2).min(area.width);
    let rect = centered(area, width, rows as u16 + 2);
    frame.render_widget(Clear, rect);
    let b = block(
        theme,
        format!(" Keys · {} (Esc closes) ", screen.title()),
        true,
    );
    let inner = b.inner(rect);
    frame.render_widget(b, rect);
    let areas = Layout::horizontal(vec![Constraint::Length(col_width); columns]).split(inner);
    for (c, chunk) in entries.chunks(rows).enumerate() {
        let lines: Vec<Line> = chunk
            .iter()
            .map(|(key, help)| {
                Line::from(vec![
                    Span::styled(format!("{key:>10}  "), key_style(theme)),
                    Span::styled(help.to_string(), theme.fg(ThemeKey::BaseText)),
                ])
            })
            .collect();
        if let Some(a) = areas.get(c) {
            frame.render_widget(Paragraph::new(lines), *a);
        }
    }
}
