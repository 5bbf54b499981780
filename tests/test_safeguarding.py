"""The safeguarding phrases in every language a child can write in: what a child really types
about harm must raise an alert with the right topic, and everyday sentences, idioms ("I'm dying
to ...") and sport ("we beat them") must not. The phrases beyond Swedish and English are a
draft to be reviewed by native speakers; these sentences are the first check of that draft."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.engine import SafetyLexicon
from flows.i18n import normalise

YAML = Path(__file__).parent.parent / "flows" / "safeguarding.yaml"
LANGS = ("sv", "en", "fi", "so", "uk", "ar", "fa", "ti")
SELF, ABUSE = "self_harm", "violence_or_abuse"

MUST_FIND = {
    "fi": [
        ("En jaksa enää, haluan kuolla.", SELF),
        ("Joskus mietin että TAPAN ITSENI", SELF),
        ("mä viiltelen käsiä kun on paha olla", SELF),
        ("En halua elää enää tällaista elämää", SELF),
        ("Isä lyö minua kun se on humalassa", ABUSE),
        ("äiti löi mua eilen illalla", ABUSE),
        ("Pelkään mennä kotiin.", ABUSE),
        ("Se pakotti minut tekemään juttuja joita en halunnut", ABUSE),
        ("Setä kosketteli minua saunassa", ABUSE),
    ],
    "so": [
        ("Waxaan rabaa inaan dhinto", SELF),
        ("mararka qaar waxaan doonayaa inaan is dilo", SELF),
        ("Waan is jarjaraa markaan murugaysanahay", SELF),
        ("Ma rabo inaan noolaado mar dambe", SELF),
        ("Aabbahay wuu i garaacaa", ABUSE),
        ("Hooyo way i garaacday shalay", ABUSE),
        ("WAAN KA BAQAYAA INAAN GURIGA TAGO", ABUSE),
        ("Adeerkay ayaa i kufsaday", ABUSE),
    ],
    "uk": [
        ("Я більше не хочу жити", SELF),
        ("іноді хочу вмерти...", SELF),
        ("Я ріжу руки, коли мені погано", SELF),
        ("Я хочу умереть", SELF),
        ("думаю покончить с собой", SELF),
        ("ya ne hochu zhyty", SELF),
        ("Тато б'є мене кожного вечора", ABUSE),
        ("Вітчим б’є мене", ABUSE),
        ("Мама била мене ременем", ABUSE),
        ("Мене б'ють вдома", ABUSE),
        ("Отчим бьёт меня", ABUSE),
        ("Боюся йти додому.", ABUSE),
        ("batko b'ye mene", ABUSE),
    ],
    "ar": [
        ("والله بدي موت", SELF),
        ("ما بدي عيش هيك", SELF),
        ("أحياناً بفكر إنو بدي أقتل نفسي", SELF),
        ("أُرِيدُ أَنْ أَمُوتَ", SELF),
        ("wallah bedi mot", SELF),
        ("أبوي يضربني كل يوم", ABUSE),
        ("أَبِي يَضْرِبُنِي", ABUSE),
        ("ماما بتضربني بالشحاطة", ABUSE),
        ("عمي اغتصبني", ABUSE),
        ("أنا خايفة ارجع عالبيت", ABUSE),
        ("baba byedrobni", ABUSE),
    ],
    "fa": [
        ("دیگه نمی\u200cخوام زنده باشم", SELF),
        ("میخوام بمیرم", SELF),
        ("دلم می\u200cخواد بمیرم", SELF),
        ("گاهی به خودم آسیب می\u200cزنم", SELF),
        ("ميخوام بميرم", SELF),  # Arabic keyboard: ي
        ("Mikham bemiram", SELF),
        ("بابام منو میزنه", ABUSE),
        ("مامانم کتکم می\u200cزنه", ABUSE),
        ("ناپدریم بهم تجاوز کرد", ABUSE),
        ("می\u200cترسم برم خونه", ABUSE),
        ("babam mano mizane", ABUSE),
    ],
    "ti": [
        ("ሓደ ሓደ ግዜ ክመውት ደልየ።", SELF),
        ("ርእሰይ ክቐትል እየ ዝሓስብ", SELF),
        ("ክነብር ኣይደልን፣ ደኺመ", SELF),
        ("ኣቦይ ይወቕዓኒ።", ABUSE),
        ("ኣደይ ትማሊ ወቒዓትኒ", ABUSE),
        ("ናብ ገዛ ክኸይድ እፈርህ", ABUSE),
    ],
}

MUST_NOT_FIND = {
    "fi": [
        "Kuolen nälkään, milloin syödään?",
        "Isä auttaa minua läksyissä",
        "Me hakattiin toinen joukkue 5-1!",
        "Tapan aikaa pelaamalla",
        "Haluan mennä kotiin",
    ],
    "so": [
        "Aabbe wuu i caawiyaa casharrada",
        "Gaajo ayaan u dhimanayaa",
        "Kooxda kale waan ka badinnay ciyaarta",
        "Waxaan rabaa inaan noolaado meel nabad ah",
        "Hooyo way i jeceshahay",
    ],
    "uk": [
        "Тато допомагає мені з уроками",
        "Ми побили їх у футболі 3:0",
        "Я помираю зі сміху",
        "Боюся йти до стоматолога",
        "Хочу жити в Стокгольмі",
        "Мы победили их команду",
    ],
    "ar": [
        "بابا بيساعدني بالواجبات",
        "متت من الضحك",
        "رح موت من الجوع",
        "غلبنا الفريق التاني ٣-٠",
        "بحب ماما كتير",
        "بدي روح عالبيت",
    ],
    "fa": [
        "الهی بمیرم برات",
        "میمیرم برای پیتزا",
        "بابام کمکم میکنه",
        "ما تیم دیگه رو بردیم",
        "مجبورم برم مدرسه",
        "میخوام برم خونه",
    ],
    "ti": [
        "ኣቦይ ይሕግዘኒ",
        "ብጥምየት ክመውት እየ",
        "ነታ ካልእ ጋንታ ስዒርናያ",
        "ናብ ገዛ ክኸይድ እደሊ",
    ],
}


@pytest.fixture(scope="module")
def lexicon() -> SafetyLexicon:
    return SafetyLexicon.load()


@pytest.mark.parametrize(("lang", "text", "topic"),
                         [(lang, text, topic) for lang, cases in MUST_FIND.items()
                          for text, topic in cases])
def test_a_disclosure_is_found_with_its_topic(lexicon, lang, text, topic):
    assert lexicon.scan(text) == ("urgent", topic)


@pytest.mark.parametrize(("lang", "text"),
                         [(lang, text) for lang, texts in MUST_NOT_FIND.items()
                          for text in texts])
def test_an_everyday_sentence_raises_no_alarm(lexicon, lang, text):
    assert lexicon.scan(text) is None


def test_every_phrase_survives_normalise_and_belongs_to_one_group():
    data = yaml.safe_load(YAML.read_text(encoding="utf-8"))
    assert [g["topic"] for g in data["groups"]] == [SELF, ABUSE]
    seen: dict[str, str] = {}
    for group in data["groups"]:
        assert tuple(group["phrases"]) == LANGS
        for lang, phrases in group["phrases"].items():
            for phrase in phrases:
                assert isinstance(phrase, str) and normalise(phrase), (lang, phrase)
                other = seen.setdefault(normalise(phrase), group["topic"])
                assert other == group["topic"], f"{phrase!r} ({lang}) is in {other} too"


def test_keyboard_variants_of_arabic_and_persian_letters_match_alike():
    from flows.i18n import normalise
    assert normalise("يضربني") == normalise("یضربنی")
    assert normalise("كتك") == normalise("کتک")
    assert normalise("\u0431\u02bc\u0454 мене") == normalise("\u0431'\u0454 мене")  # бʼє, б'є
