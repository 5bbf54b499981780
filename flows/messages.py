"""Every system sentence a child sees, in Swedish (the source language).

These are msgids in the `tala` gettext domain; `pybabel extract -k N_` picks them up with the
`Translators:` comments. Write for a 7-year-old: short sentences, everyday words. Placeholders
in {braces} must stay as they are in every translation.
"""

from flows.i18n import N_

# Translators: comma-separated words a child may write to mean YES. Add the everyday
# forms of your language; the first word is shown to the child.
WORDS_YES = N_("ja, japp, jepp, jaa, jo, j, absolut, visst, okej, ok, yes")
# Translators: comma-separated words a child may write to mean NO. The first is shown.
WORDS_NO = N_("nej, nä, nää, nepp, nix, n, no")
# Translators: comma-separated words that ask for HELP (how this works, who to call).
WORDS_HELP = N_("hjälp, ?, help, info")
# Translators: comma-separated words to go BACK and change the previous answer.
WORDS_BACK = N_("tillbaka, bakåt, ändra, ångra, back")
# Translators: comma-separated words to SKIP a question.
WORDS_SKIP = N_("hoppa över, hoppa, skippa, pass, nästa, vet inte, skip")
# Translators: comma-separated words to PAUSE and continue later.
WORDS_PAUSE = N_("paus, pausa, vänta, senare, pause")
# Translators: comma-separated words to STOP answering altogether.
WORDS_STOP = N_("sluta, avsluta, stopp, avbryt")
# Translators: comma-separated words to SEE MY ANSWERS so far.
WORDS_ANSWERS = N_("mina svar, svar, visa svar, visa mina svar")
# Translators: comma-separated words to CHANGE LANGUAGE.
WORDS_LANGUAGE = N_("språk, byt språk, language")
# Translators: number words from 0 to 10, separated by | (several forms of one number are
# separated by commas). Children may write "fem" instead of 5.
NUMBER_WORDS = N_("noll | en, ett | två | tre | fyra | fem | sex | sju | åtta | nio | tio")
# Translators: words that join several choices, like "1 och 3". Comma-separated.
WORDS_AND = N_("och, samt, and")

# Translators: shown once, right after the questionnaire's own introduction.
START_HINT = N_("Du kan skriva hjälp när du vill.")
HINT_YES_NO = N_("Svara ja eller nej.")
# Translators: {low} and {high} are numbers; {low_word} and {high_word} are what they mean.
HINT_SCALE_ENDS = N_("Svara med en siffra från {low} till {high}. {low} betyder "
                     "\"{low_word}\" och {high} betyder \"{high_word}\".")
HINT_SCALE = N_("Svara med en siffra från {low} till {high}.")
HINT_CHOICE = N_("Svara med en siffra.")
HINT_MULTI = N_("Du kan välja flera. Skriv siffrorna, till exempel 1 och 3.")
HINT_FREE = N_("Skriv med egna ord. Du kan också skriva hoppa över.")
# Translators: said before the question again when the child's answer did not fit.
NOT_UNDERSTOOD = N_("Förlåt, jag förstod inte riktigt.")
# Translators: {low} and {high} are numbers.
OUT_OF_RANGE = N_("Siffran ska vara från {low} till {high}.")
# Translators: {count} is how many answers there are to choose from.
NO_SUCH_CHOICE = N_("Det finns bara {count} svar att välja mellan.")
# Translators: {option} is the text of an answer that cannot be combined with others.
EXCLUSIVE_CHOICE = N_("\"{option}\" kan du inte välja tillsammans med något annat.")
# Translators: added after a few answers in a row that did not fit.
STUCK_HINT = N_("Du kan skriva hoppa över om du inte vill svara, eller hjälp.")
HELP = N_("Så här gör du:\n"
          "Svara på frågan så gott du kan. Det finns inga rätta eller fel svar.\n"
          "tillbaka = ändra förra svaret\n"
          "hoppa över = gå till nästa fråga\n"
          "paus = fortsätt en annan gång\n"
          "mina svar = se vad du har svarat\n"
          "språk = byt språk\n"
          "sluta = sluta svara")
HELP_NOW = N_("Vill du prata med någon nu? Ring eller chatta med BRIS på 116 111. Det är "
              "gratis. Om det är akut, ring 112.")
SAFETY = N_("Tack för att du berättar. Det är viktigt. Den vuxna du brukar prata med på "
            "socialtjänsten får veta det nu. Är du i fara, ring 112. Du kan också ringa eller "
            "chatta med BRIS på 116 111.")
# Translators: after an urgent answer outside office hours, when the unit's on-call staff
# (socialjouren) are told at once. "hen" is the Swedish pronoun for anyone.
SAFETY_ON_CALL = N_("Tack för att du berättar. Det är viktigt. En vuxen på socialtjänsten som "
                    "jobbar just nu får veta det nu. Den vuxna du brukar prata med får veta det "
                    "när hen är på jobbet igen. Är du i fara, ring 112. Du kan också ringa eller "
                    "chatta med BRIS på 116 111.")
# Translators: after an urgent answer when the office is closed and nobody can be told before
# it opens: the child must not believe that someone knows now.
SAFETY_CLOSED = N_("Tack för att du berättar. Det är viktigt. Socialtjänsten är stängd just nu. "
                   "Den vuxna du brukar prata med läser det när hen är på jobbet igen. Är du i "
                   "fara nu, ring 112. Du kan också ringa eller chatta med BRIS på 116 111.")
SAFETY_CONCERN = N_("Tack för att du berättar. Den vuxna du brukar prata med på socialtjänsten "
                    "får veta det. Vill du prata med någon nu? Ring eller chatta med BRIS på "
                    "116 111.")
AT_FIRST = N_("Det här är första frågan, så det finns inget att gå tillbaka till.")
GOING_BACK = N_("Okej, vi går tillbaka.")
# Translators: {answer} is what the child answered before, as they saw it.
YOU_ANSWERED = N_("Förut svarade du: {answer}")
SKIPPED = N_("Okej, vi hoppar över den.")
KEPT = N_("Okej, ditt förra svar finns kvar.")
PAUSED = N_("Okej, vi pausar. Det du har svarat är sparat. Skriv något när du vill fortsätta.")
WELCOME_BACK = N_("Välkommen tillbaka! Vi fortsätter där du var.")
CONFIRM_STOP = N_("Vill du sluta svara nu? Svara ja eller nej. Det du redan har svarat får den "
                  "vuxna du brukar prata med se.")
STOPPED = N_("Okej, vi slutar här. Tack för det du har berättat.")
NOT_STOPPED = N_("Bra, då fortsätter vi.")
LANGUAGE_MENU = N_("Vilket språk vill du skriva på? Svara med en siffra.")
# Translators: said in the new language right after the child picks it.
LANGUAGE_SET = N_("Nu skriver vi på svenska.")
MY_ANSWERS = N_("Det här har du svarat:")
NO_ANSWERS_YET = N_("Du har inte svarat på något än.")
ANSWER_SKIPPED = N_("(hoppade över)")
ALREADY_DONE = N_("Du har redan svarat på alla frågor. Tack!")
# Translators: a text after the questions ended because the child stopped or time ran out.
QUESTIONS_OVER = N_("Frågorna är slut nu. Tack för det du har berättat.")
# Translators: a text after the questions are over that the caseworker will be shown.
AFTER_END_MESSAGE = N_("Tack för att du skriver. Frågorna är slut, men den vuxna du brukar "
                       "prata med på socialtjänsten får läsa det du skrev.")
# Translators: the same in an anonymous survey, where nobody can read it or answer.
AFTER_END_ANONYMOUS = N_("Frågorna är slut. Dina svar är anonyma, så ingen kan läsa det här och "
                         "svara dig. Vill du prata med någon? Ring eller chatta med BRIS på "
                         "116 111.")
# Translators: words that are only a greeting or thanks (comma-separated, lower case): sent
# after the questions, they are kept as a note, without telling the caseworker at once.
WORDS_SMALL_TALK = N_("tack, tackar, tusen, så, mycket, ok, okej, hej, hejdå, då, hallå, bra, "
                      "toppen, fint, ja, nej")
REMINDER = N_("Hej! Du har några frågor kvar. Skriv något när du vill fortsätta.")

# Translators: the first SMS a child gets, before they have said anything: who asks, that they
# decide, how to start and how to stop. Someone else may read the child's phone, so it says
# nothing about why. {sender} is who is asking, e.g. "Socialtjänsten i Nacka". Keep STOP in
# Latin capitals: it is the SMS provider's word for "no more messages" in every language.
# Keep it short: at most 2 SMS segments (306 Latin letters; 134 in Arabic, Persian, Tigrinya
# or Ukrainian, with a sender name of about 20 letters). The rest comes after the child answers.
INVITE_SMS = N_("Hej! {sender} vill gärna veta hur du har det. Du bestämmer själv om du vill "
                "svara. Svara hej så börjar vi, eller STOP om du inte vill få fler sms.")
# Translators: the only reply to a number that has no questions waiting (at most once a day).
# It must not reveal anything about anyone.
UNKNOWN_NUMBER = N_("Hej! Det finns inga frågor till det här numret just nu.")

# Translators: a chat opened a new invitation while other questions were still open in it
# (brothers and sisters may share a phone); those wait until these are done.
OTHER_WAITS = N_("Det finns andra frågor som inte är klara i den här chatten. De får vänta, "
                 "och vi tar dem sedan.")
# Translators: after the last question, when the questions that were waiting come back.
MORE_WAITING = N_("Det finns fler frågor som väntar här, sedan förut. Skriv något när du vill "
                  "fortsätta med dem.")
# Translators: a chat (Telegram, a chat assistant) gave an invitation code tala does not know:
# wrong, already used or expired (the child is not told which).
CODE_UNKNOWN = N_("Jag hittar ingen inbjudan med den koden. Titta på koden igen, eller fråga "
                  "den vuxna som skickade den.")
# Translators: after several wrong codes from one chat.
CODE_TOO_MANY = N_("Du har provat många gånger. Vänta en timme och försök igen, eller fråga den "
                   "vuxna som skickade koden.")
# Translators: Telegram's /start without an invitation link, or a chat with nothing waiting.
NEEDS_INVITATION = N_("Hej! Öppna länken du fick från den vuxna på socialtjänsten, så börjar vi.")
# Translators: a child pressed a button for a question they have already answered.
ALREADY_ANSWERED = N_("Det har du redan svarat på.")
# Translators: the button that reads the question aloud (Telegram voice message).
READ_ALOUD = N_("Läs upp")
# Translators: the button that sends the answers chosen in a "choose several" question.
DONE_CHOOSING = N_("Klar")

# Translators: an anonymous survey: nobody knows who the child is, so nobody can be told to
# help. Shown at once after an answer that may mean harm.
SAFETY_ANONYMOUS = N_("Tack för att du berättar. Dina svar är anonyma, så ingen vet vem du är. "
                      "Prata gärna med elevhälsan i skolan eller en vuxen du litar på. Är du i "
                      "fara, ring 112. Du kan också ringa eller chatta med BRIS på 116 111.")
# Translators: someone texted a survey's keyword before it opens. {date} is a date.
SURVEY_NOT_OPEN = N_("Den här enkäten öppnar {date}. Välkommen tillbaka då!")
# Translators: someone texted a survey's keyword after it closed.
SURVEY_CLOSED = N_("Den här enkäten är stängd nu. Tack för att du ville svara!")
# Translators: after a further worrying answer, when the full help text was already shown.
# Only for answers of some concern: the most serious ones always get the whole text again.
SAFETY_AGAIN = N_("Tack. Kom ihåg: BRIS 116 111, och 112 om det är akut.")
# Translators: added to the help text after an answer about self-harm or not wanting to live.
# Självmordslinjen (Mind's suicide line) keeps its Swedish name: it is what the child searches
# for and what answers the phone; 90101 is its number for calls and chat.
SAFETY_SUICIDE = N_("Har du tankar på att skada dig själv eller att inte vilja leva? Då kan du "
                    "också ringa eller chatta med Självmordslinjen på 90101.")
# Translators: the child asked for the question to be read aloud (Telegram), but there is no
# voice for the child's language yet (no Somali or Tigrinya voice). Said in the child's own
# language; "a grown-up you trust" may read the question instead.
READ_ALOUD_NO_VOICE = N_("Jag kan inte läsa upp på ditt språk än. Be gärna en vuxen du litar på "
                         "att läsa för dig.")
# Translators: the child asked for the question to be read aloud (Telegram), but reading aloud
# does not work at the moment, in any language.
READ_ALOUD_OFF = N_("Jag kan inte läsa upp just nu. Be gärna en vuxen du litar på att läsa för "
                    "dig.")
# Translators: the child asked for the question to be read aloud (Telegram), but no question
# is being asked just now.
READ_ALOUD_NOTHING = N_("Det finns ingen fråga att läsa upp just nu.")

# The web chat (the page a child opens from an SMS link).
# Translators: the SMS with the web chat's link, the first a child gets. As INVITE_SMS: who
# asks, that they decide, how to stop; nothing about why. {sender} as there; {link} is the web
# address (about 45 Latin characters), on a line of its own. Keep STOP in Latin capitals.
INVITE_WEB = N_("Hej! {sender} vill gärna veta hur du har det. Du bestämmer själv om du vill "
                "svara. Öppna länken när du vill:\n{link}\nSvara STOP om du inte vill få fler "
                "sms.")
# Translators: the web chat page's title (the browser tab): nothing about who or why.
WEB_TITLE = N_("Frågor till dig")
# Translators: the text box's placeholder on the web chat page.
WEB_TYPE_HERE = N_("Skriv här")
# Translators: the button that sends what the child typed.
WEB_SEND = N_("Skicka")
# Translators: web chat buttons, as short as can be: change the last answer, take a break,
# choose another language, see what I answered, stop answering, make the text bigger.
WEB_BACK = N_("Tillbaka")
WEB_PAUSE = N_("Pausa")
WEB_LANGUAGE = N_("Byt språk")
WEB_ANSWERS = N_("Mina svar")
WEB_STOP = N_("Sluta")
WEB_BIGGER = N_("Större text")
# Translators: the web chat could not reach tala (no network): nothing was lost.
WEB_OFFLINE = N_("Det gick inte att skicka just nu. Inget har försvunnit. Försök igen om en "
                 "stund.")
# Translators: the web chat link opened after the questions ended, after it expired, or a
# wrong link: the same words for all, so someone else who opens it learns nothing.
WEB_CLOSED = N_("Den här länken fungerar inte längre.")
# Translators: the web chat link opened on a second phone or browser while the first still has
# it: it works on one at a time. Answering the SMS works too.
WEB_ELSEWHERE = N_("Den här länken är redan öppen i en annan telefon eller webbläsare. Fortsätt "
                   "där, eller svara på sms:et i stället.")
# Translators: WhatsApp's button that opens the list of answers to pick one from (at most 20
# characters).
CHOOSE = N_("Välj ett svar")
