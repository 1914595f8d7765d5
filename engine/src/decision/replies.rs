//! Every text the assistant itself writes to a person, in the three languages: the hand-over
//! and open-ticket notices, the clarifying question, the ticket line and the frame of an
//! answer. The safety message is the crisis gate's ([`super::crisis`]); answers' bodies come
//! from the approved knowledge base.

use chrono::{Datelike, Weekday};

use super::crisis::{self, CrisisNumbers};
use crate::lang::Lang;
use crate::sla::TeamReturn;

/// The reply when a human takes over (the stored turn appends the ticket number).
pub fn handover_message(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "شكرًا لك على رسالتك. سيرد عليك أحد أعضاء فريقنا هنا في أقرب وقت ممكن.",
        Lang::Fr => {
            "Merci pour votre message. Une personne de notre équipe vous répondra ici dès que possible."
        }
        Lang::En => {
            "Thank you for your message. A member of our team will answer you here as soon as possible."
        }
    }
}

/// The reply while the conversation's ticket is open: the message has reached the team.
pub fn ticket_open_message(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "وصلت رسالتك إلى عضو فريقنا الذي يتابع طلبك، وسيرد عليك هنا.",
        Lang::Fr => {
            "Votre message a été transmis à la personne de notre équipe qui suit votre demande ; elle vous répondra ici."
        }
        Lang::En => {
            "Your message has reached the member of our team who is following your request; they will answer you here."
        }
    }
}

/// The one clarifying question asked on low confidence when [`super::auto::CLARIFY_ENV`] is set.
pub fn clarifying_question(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => {
            "حتى أوجهك إلى المعلومة المناسبة، هل يمكنك أن تخبرني أكثر قليلًا عما تمر به (مثلًا: النوم، القلق، الكحول، القنب، التبغ، القمار)؟"
        }
        Lang::Fr => {
            "Pour vous orienter vers la bonne information, pouvez-vous m'en dire un peu plus sur ce que vous vivez (par exemple : sommeil, anxiété, alcool, cannabis, tabac, jeux d'argent) ?"
        }
        Lang::En => {
            "To point you to the right information, could you tell me a little more about what you are going through (for example: sleep, anxiety, alcohol, cannabis, tobacco, gambling)?"
        }
    }
}

pub(crate) fn intro(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "إليك ما تقوله مصادرنا المعتمدة:",
        Lang::Fr => "Voici ce que disent nos sources validées :",
        Lang::En => "Here is what our approved sources say:",
    }
}

pub(crate) fn sources_label(lang: Lang) -> (&'static str, &'static str) {
    match lang {
        Lang::Ar => ("المصادر: ", "، "),
        Lang::Fr => ("Sources : ", " ; "),
        Lang::En => ("Sources: ", "; "),
    }
}

pub(crate) fn closing(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "إذا أردت التحدث مع أحد أعضاء فريقنا، يكفي أن تطلب ذلك.",
        Lang::Fr => {
            "Si vous souhaitez parler à une personne de notre équipe, il suffit de le demander."
        }
        Lang::En => "If you would like to talk to a member of our team, just ask.",
    }
}

/// The reply to a message about another subject than the service's: what it helps with, and
/// that a person can be asked for at any time.
pub fn out_of_scope_message(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => {
            "أنا مساعد خدمة للدعم في الإدمان والصحة النفسية (الكحول، المخدرات، التدخين، القمار، التوتر، القلق، الحزن، النوم، هموم العائلة)، ولا أستطيع المساعدة في هذا السؤال. إذا كان هناك ما يثقل عليك، احكِ لي عنه، ويمكنك أن تطلب التحدث مع شخص من فريقنا في أي وقت."
        }
        Lang::Fr => {
            "Je suis l'assistant d'un service d'aide pour les addictions et la santé mentale (alcool, drogues, tabac, jeux d'argent, stress, anxiété, tristesse, sommeil, soucis de famille) et je ne peux pas vous aider sur cette question. Si quelque chose vous pèse, parlez-m'en ; vous pouvez aussi demander à parler à une personne de notre équipe à tout moment."
        }
        Lang::En => {
            "I'm the assistant of a help service for addiction and mental health (alcohol, drugs, smoking, gambling, stress, anxiety, low mood, sleep, family worries), and I can't help with that question. If something is weighing on you, tell me about it; you can also ask to talk to a person from our team at any time."
        }
    }
}

/// The line an answer opens with when its source is written in another language than the
/// person's (no translation of the article exists yet in theirs).
pub(crate) fn source_in_other_language(lang: Lang, source: &str) -> String {
    let name = |ar: &'static str, fr: &'static str, en: &'static str| match lang {
        Lang::Ar => ar,
        Lang::Fr => fr,
        Lang::En => en,
    };
    let source_name = match source {
        "ar" => name("العربية", "arabe", "Arabic"),
        "fr" => name("الفرنسية", "français", "French"),
        _ => name("الإنجليزية", "anglais", "English"),
    };
    match lang {
        Lang::Ar => format!(
            "لا يوجد لدينا بعد مقال بالعربية حول هذا الموضوع؛ ما يلي مأخوذ من مقالنا باللغة {source_name}."
        ),
        Lang::Fr => format!(
            "Nous n'avons pas encore d'article en français sur ce sujet ; ce qui suit vient de notre article en {source_name}."
        ),
        Lang::En => format!(
            "We do not have an article in English on this yet; what follows comes from our article in {source_name}."
        ),
    }
}

/// The line a hand-over reply ends with: the ticket's number.
pub fn ticket_line(lang: Lang, number: &str) -> String {
    match lang {
        Lang::Ar => format!("رقم طلبك: {number}"),
        Lang::Fr => format!("Numéro de votre demande : {number}"),
        Lang::En => format!("Your request number: {number}"),
    }
}

/// When the team can answer, in `lang`, to complete "a member of the team will answer you
/// here ...": the next opening of the business-hours calendar, or, around the clock or within
/// the hours, as soon as someone is back online.
pub fn team_return(lang: Lang, when: &TeamReturn) -> String {
    match when {
        TeamReturn::WhenBack => match lang {
            Lang::Ar => "حالما يعود أحد أعضاء الفريق إلى الاتصال".to_string(),
            Lang::Fr => "dès qu'une personne de l'équipe sera de nouveau en ligne".to_string(),
            Lang::En => "as soon as a member of the team is back online".to_string(),
        },
        TeamReturn::At { local, timezone } => {
            let day = weekday_name(lang, local.weekday());
            let time = local.format("%H:%M");
            let place = place_name(lang, timezone);
            match lang {
                Lang::Ar => format!("ابتداءً من يوم {day} على الساعة {time} (بتوقيت {place})"),
                Lang::Fr => format!("à partir de {day} à {time} (heure de {place})"),
                Lang::En => format!("from {day} at {time} ({place} time)"),
            }
        }
    }
}

fn weekday_name(lang: Lang, day: Weekday) -> &'static str {
    let i = day.num_days_from_sunday() as usize;
    match lang {
        Lang::Ar => [
            "الأحد",
            "الإثنين",
            "الثلاثاء",
            "الأربعاء",
            "الخميس",
            "الجمعة",
            "السبت",
        ][i],
        Lang::Fr => [
            "dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi",
        ][i],
        Lang::En => [
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
        ][i],
    }
}

/// The calendar's time zone as a person reads it: the service's own city by name, another
/// zone by its IANA name.
fn place_name(lang: Lang, timezone: &str) -> String {
    match (timezone, lang) {
        ("Africa/Algiers", Lang::Ar) => "الجزائر".to_string(),
        ("Africa/Algiers", Lang::Fr) => "Alger".to_string(),
        ("Africa/Algiers", Lang::En) => "Algiers".to_string(),
        (other, _) => other.to_string(),
    }
}

/// The reply when a human takes over but nobody who could take the conversation is online: no
/// promise of an answer now, when the team can answer, and the numbers to call meanwhile.
pub fn unstaffed_handover_message(lang: Lang, numbers: &CrisisNumbers, when: &str) -> String {
    let template = match lang {
        Lang::Ar => {
            "شكرًا لك على رسالتك. لا يوجد أحد من فريقنا متصلاً الآن؛ سيرد عليك أحد أعضاء الفريق هنا {{WHEN}}. إذا كنت في خطر، اتصل بالرقم {{EMERGENCY_NUMBER}}، ويمكنك الاتصال بخط الأزمات {{CRISIS_LINE}} في أي وقت."
        }
        Lang::Fr => {
            "Merci pour votre message. Personne de notre équipe n'est en ligne pour le moment ; une personne de l'équipe vous répondra ici {{WHEN}}. Si vous êtes en danger, appelez le {{EMERGENCY_NUMBER}} ; notre ligne de crise, le {{CRISIS_LINE}}, répond à toute heure."
        }
        Lang::En => {
            "Thank you for your message. Nobody from our team is online right now; a member of the team will answer you here {{WHEN}}. If you are in danger, call {{EMERGENCY_NUMBER}}; our crisis line, {{CRISIS_LINE}}, answers at any time."
        }
    };
    crisis::fill_numbers(template, lang, numbers).replace(crisis::WHEN_PLACEHOLDER, when)
}
