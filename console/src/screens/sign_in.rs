//! The sign-in form: e-mail and password, before any other screen.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use crate::data::Request;
use crate::theme::{Theme, ThemeKey};
use crate::widgets::{block, centered};

/// The sign-in form.
#[derive(Debug, Clone, Default)]
pub struct SignInForm {
    /// E-mail as typed.
    pub email: String,
    /// Password as typed (never drawn).
    pub password: String,
    /// The password field has the focus.
    pub on_password: bool,
    /// The last refusal.
    pub error: Option<String>,
    /// Waiting for the answer.
    pub busy: bool,
    /// Demo accounts to show (the demo passes them).
    pub hint: Option<String>,
}

/// What a key on the form leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum SignInStep {
    /// Stay on the form.
    Stay,
    /// Leave the console.
    Quit,
    /// Ask the worker to sign in.
    Submit(Request),
}

impl SignInForm {
    /// A form with the e-mail filled in (`amal --as EMAIL`): the password has the focus.
    pub fn new(email: Option<String>) -> Self {
        SignInForm {
            on_password: email.is_some(),
            email: email.unwrap_or_default(),
            ..SignInForm::default()
        }
    }

    /// Handles a key. The password leaves the form with the request, so it is not kept.
    pub fn key(&mut self, key: KeyEvent) -> SignInStep {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => return SignInStep::Quit,
            KeyCode::Esc => return SignInStep::Quit,
            _ if self.busy => {}
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                self.on_password = !self.on_password
            }
            KeyCode::Enter => {
                if !self.on_password {
                    self.on_password = true;
                } else if self.email.trim().is_empty() {
                    self.error = Some("enter your e-mail address".into());
                    self.on_password = false;
                } else if self.password.is_empty() {
                    self.error = Some("enter your password".into());
                } else {
                    self.busy = true;
                    self.error = None;
                    return SignInStep::Submit(Request::SignIn {
                        email: self.email.trim().to_string(),
                        password: std::mem::take(&mut self.password),
                    });
                }
            }
            KeyCode::Backspace => {
                self.field().pop();
            }
            KeyCode::Char(c) if !ctrl => self.field().push(c),
            _ => {}
        }
        SignInStep::Stay
    }

    /// The field with the focus.
    fn field(&mut self) -> &mut String {
        if self.on_password {
            &mut self.password
        } else {
            &mut self.email
        }
    }

    /// Sign-in was refused: the reason shows and the password is typed again.
    pub fn refused(&mut self, error: String) {
        self.busy = false;
        self.error = Some(error);
        self.password.clear();
    }

    /// Draws the form in the middle of `area`.
    pub fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let width = area.width.min(60);
        let height = 12u16.min(area.height);
        let rect = centered(area, width, height);
        let field = |label: &str, value: String, focused: bool| {
            let style = if focused {
                theme
                    .fg(ThemeKey::BaseBorderFocus)
                    .add_modifier(Modifier::BOLD)
            } else {
                theme.fg(ThemeKey::BaseDim)
            };
            Line::from(vec![
                Span::styled(format!("{label:>10} "), style),
                Span::styled(value, theme.fg(ThemeKey::BaseText)),
                Span::styled(if focused { "▏" } else { "" }, style),
            ])
        };
        let dim = |text: String| Line::from(Span::styled(text, theme.fg(ThemeKey::BaseDim)));
        let mut lines = vec![
            dim("Sign in with your staff account".into()),
            Line::default(),
            field("E-mail", self.email.clone(), !self.on_password),
            field(
                "Password",
                "•".repeat(self.password.chars().count()),
                self.on_password,
            ),
            Line::default(),
        ];
        if self.busy {
            lines.push(dim("Signing in…".into()));
        } else if let Some(e) = &self.error {
            lines.push(Line::from(Span::styled(
                e.clone(),
                theme.alarm(ThemeKey::BaseError),
            )));
        } else {
            lines.push(Line::from(Span::styled(
                "Enter: next / sign in   Tab: switch field   Esc: quit",
                theme.fg(ThemeKey::FooterText),
            )));
        }
        if let Some(hint) = &self.hint {
            lines.push(Line::default());
            lines.push(dim(hint.clone()));
        }
        frame.render_widget(Clear, rect);
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(block(theme, " Amal · operator console ", true)),
            rect,
        );
    }
}
