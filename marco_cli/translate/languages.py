"""Languages ``marco translate --to/--from`` knows, by code, English name or
native name (case-insensitive)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import UsageError


@dataclass(frozen=True)
class Language:
    code: str
    name: str  # English name, used in the English instruction
    zh: str  # Chinese name, used in Marco-o1's published instruction form (翻译到英文：)
    aliases: tuple[str, ...] = ()  # native names and common variants


LANGUAGES: tuple[Language, ...] = (
    Language("en", "English", "英文", ("英语",)),
    Language("zh", "Chinese", "中文", ("中文", "汉语", "zh-cn", "zh-hans", "mandarin")),
    Language("ja", "Japanese", "日文", ("日本語", "日语", "jp")),
    Language("ko", "Korean", "韩文", ("한국어", "韩语")),
    Language("fr", "French", "法文", ("français", "francais", "法语")),
    Language("de", "German", "德文", ("deutsch", "德语")),
    Language("es", "Spanish", "西班牙文", ("español", "espanol", "西班牙语")),
    Language("ru", "Russian", "俄文", ("русский", "俄语")),
    Language("pt", "Portuguese", "葡萄牙文", ("português", "portugues", "葡萄牙语")),
    Language("it", "Italian", "意大利文", ("italiano", "意大利语")),
    Language("ar", "Arabic", "阿拉伯文", ("العربية", "阿拉伯语")),
    Language("nl", "Dutch", "荷兰文", ("nederlands", "荷兰语")),
    Language("tr", "Turkish", "土耳其文", ("türkçe", "turkce", "土耳其语")),
    Language("vi", "Vietnamese", "越南文", ("tiếng việt", "tieng viet", "越南语")),
    Language("th", "Thai", "泰文", ("ไทย", "泰语")),
    Language("id", "Indonesian", "印尼文", ("bahasa indonesia", "印尼语")),
    Language("hi", "Hindi", "印地文", ("हिन्दी", "印地语")),
    Language("pl", "Polish", "波兰文", ("polski", "波兰语")),
)

_BY_KEY: dict[str, Language] = {}
for _lang in LANGUAGES:
    for _key in (_lang.code, _lang.name, _lang.zh, *_lang.aliases):
        _BY_KEY.setdefault(_key.casefold(), _lang)


def language(spec: str, *, option: str = "--to") -> Language:
    """``en``, ``English``, ``english``, ``英文`` ... -> the language; anything
    else is a one-line usage error listing the codes."""
    found = _BY_KEY.get(spec.strip().casefold().replace("_", "-"))
    if found is None:
        codes = ", ".join(lang.code for lang in LANGUAGES)
        raise UsageError(f"unknown language '{spec}' for {option}; use one of: {codes} (or the language's name)")
    return found
