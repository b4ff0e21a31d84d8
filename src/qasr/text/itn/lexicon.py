"""Word lists the Chinese ITN rules consult, in Simplified and Traditional script.

Kept apart from the rules so that adding a unit or an idiom is a one-line change with no regex
editing. Every list is turned into one prefix-trie regex at import (:func:`alternation`): Python's
``re`` tries the branches of a flat alternation one by one, a trie lets it reject a position on the
first character, which keeps the whole pass within the speed budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Simplified -> Traditional for the characters that occur in the lists below. Lists are written
# once in Simplified and widened with this table; OpenCC is not imported here (too heavy, and the
# mapping needed is tiny).
_S2T = str.maketrans({
    "万": "萬", "亿": "億", "两": "兩", "个": "個", "点": "點", "钟": "鐘", "时": "時", "岁": "歲",
    "块": "塊", "钱": "錢", "币": "幣", "镑": "鎊", "韩": "韓", "卢": "盧", "欧": "歐", "圆": "圓",
    "吨": "噸", "亩": "畝", "顷": "頃", "伏": "伏", "赫": "赫", "贝": "貝", "帧": "幀", "厘": "釐",
    "纳": "納", "级": "級", "号": "號", "离": "離", "稳": "穩", "恶": "惡", "连": "連", "树": "樹",
    "怀": "懷", "传": "傳", "当": "當", "闻": "聞", "计": "計", "变": "變", "艺": "藝", "罗": "羅",
    "汉": "漢", "层": "層", "狱": "獄", "将": "將", "节": "節", "气": "氣", "干": "乾", "净": "淨",
    "归": "歸", "线": "線", "长": "長", "黄": "黃", "周": "週", "间": "間", "规": "規", "划": "劃",
    "于": "於", "后": "後", "开": "開", "发": "發", "见": "見", "会": "會", "车": "車", "铁": "鐵",
    "飞": "飛", "机": "機", "课": "課", "达": "達", "结": "結", "关": "關", "门": "門", 
    "约": "約", "准": "準", "战": "戰", "胜": "勝", "击": "擊", "败": "敗", "获": "獲",
    "赢": "贏", "输": "輸", "领": "領", "对": "對", "队": "隊", "场": "場", "负": "負", "数": "數",
    "转": "轉", "险": "險", "惨": "慘", "编": "編", "码": "碼", "验": "驗", "证": "證", "邮": "郵",
    "话": "話", "房": "房", "分": "分", "办": "辦", "为": "為", "书": "書", "华": "華", "摄": "攝",
    "毫": "毫", "尔": "爾", "马": "馬", "区": "區", "单": "單", "届": "屆", "组": "組", "轮": "輪",
    "龙": "龍", "国": "國", "庆": "慶", "礼": "禮", "尽": "盡", "乱": "亂", "调": "調", "热": "熱",
    "团": "團", "觉": "覺", "着": "著", "刚": "剛", "过": "過", "还": "還", "这": "這", "样": "樣",
    "说": "說", "讲": "講", "谈": "談", "听": "聽", "识": "識", "边": "邊", "么": "麼", "实": "實",
    "际": "際", "宽": "寬", "带": "帶", "坛": "壇", "项": "項", "宫": "宮", "东": "東", "阳": "陽",
    "罚": "罰", "讨": "討", "状": "狀", "态": "態", "动": "動", "习": "習", "术": "術", "产": "產",
    "风": "風", "云": "雲", "录": "錄", "减": "減", "学": "學", "账": "賬", "头": "頭", "钗": "釵",
    "补": "補", "剑": "劍", "来": "來", "盗": "盜", "称": "稱", "仑": "侖", "兹": "茲", "绩": "績",
    "阵": "陣", "总": "總", "终": "終", "赛": "賽", "电": "電", "迟": "遲", "订": "訂", "虑": "慮",
    "认": "認", "论": "論", "压": "壓", "钢": "鋼", "温": "溫", "体": "體", "评": "評",
    "价": "價", "满": "滿", "给": "給", "绝": "絕", "余": "餘", "积": "積", "页": "頁", "无": "無",
    "参": "參", "系": "係",
})  # fmt: skip
# Variant forms OpenCC's s2t writes where Taiwan and Hong Kong use the ones above (爲/為, 説/說,
# 臺/台, 裏/裡...): ASR output converted with a different OpenCC profile still matches.
_S2T_VARIANT = str.maketrans({
    "为": "爲", "說": "説", "说": "説", "床": "牀", "吃": "喫", "里": "裏", "台": "臺", "线": "綫",
    "為": "爲", "溫": "温", "温": "温",
})  # fmt: skip


def both_scripts(words: Iterable[str]) -> list[str]:
    """Each word plus its Traditional spellings (when they differ)."""
    out: list[str] = []
    seen: set[str] = set()
    for w in words:
        t = w.translate(_S2T)
        for v in (w, t, w.translate(_S2T_VARIANT), t.translate(_S2T_VARIANT)):
            if v not in seen:
                seen.add(v)
                out.append(v)
    return out


def alternation(words: Iterable[str]) -> str:
    """Regex source that matches any of ``words``, longest first, built as a prefix trie."""
    trie: dict[str, dict] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        ends_here = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends_here:
            return "(?:" + body + ")?"
        return body

    return build(trie)


# Units after which a lone digit is a quantity to write in figures (五公斤 -> 5公斤), as opposed to
# counting words (三个人, 两本书) that writers keep in characters. Measures, money, percentage
# points, ages, clock durations and numbering (号).
MEASURE_UNITS = both_scripts([
    # length
    "米", "公里", "千米", "厘米", "毫米", "分米", "微米", "纳米", "奈米", "公尺", "公分", "英里",
    "英尺", "英寸", "海里", "光年",
    # mass
    "公斤", "千克", "克", "毫克", "微克", "公克", "斤", "吨", "公吨", "磅", "盎司", "台斤", "克拉",
    # area, volume
    "平方米", "平米", "平方公里", "平方千米", "平方公尺", "平方厘米", "平方英尺", "公顷", "亩",
    "坪", "立方米", "立方厘米", "立方", "毫升", "公升", "加仑",
    # money (块 only before 钱 or a further digit, see MONEY_BLOCK)
    "元", "块钱", "毛钱", "角钱", "美元", "美金", "欧元", "日元", "日圆", "英镑", "港元", "港币",
    "人民币", "台币", "新台币", "韩元", "卢布", "澳元", "澳币", "加元", "加币", "法郎", "比特币",
    # ratios, ages, durations, temperature, engineering
    "个百分点", "倍", "岁", "周岁", "周年", "小时", "分钟", "秒钟", "秒", "毫秒", "摄氏度",
    "华氏度", "瓦", "千瓦", "伏特", "赫兹", "兆赫", "分贝", "千卡", "大卡", "卡路里",
    "马力", "折", "级地震", "级台风", "级颱风", "级风", "号", "号线", "°", "℃", "%",
])  # fmt: skip
# 一元 is a unit, but 一元化/一元论/一元二次 are not.
MEASURE_NOT = both_scripts(["元化", "元论", "元二次", "元一次", "元素", "元旦", "元首", "元宵"])

# Units that chain to a following digit: 十二块五 (12块5), 一米八 (1米8), 三元五角, 九秒八三.
CHAIN_UNITS = frozenset("块塊元米毛角秒")  # (度 has its own rule: 三十七度五)

# Words that end right before an hour when 点 means o'clock (下午三点).
TIME_BEFORE = both_scripts([
    "上午", "下午", "早上", "早晨", "清晨", "晚上", "中午", "凌晨", "傍晚", "夜里", "夜裡", "半夜", "深夜",
    "今晚", "明晚", "昨晚", "今早", "明早", "当晚", "每天", "每晚", "天天", "到", "至", "约",
    "大约", "大概", "直到", "等到", "晚间", "早", "晚", "约在", "定在", "改在", "安排在", "订在", "推迟到",
    "提前到", "延到", "截止到",
])  # fmt: skip
# For 一点 (usually "a little") only the unmistakable ones.
TIME_BEFORE_ONE = both_scripts([
    "上午", "下午", "早上", "晚上", "中午", "凌晨", "半夜", "深夜", "夜里", "夜裡", "今晚", "明晚", "昨晚",
    "当晚", "每天", "每晚", "午夜", "晚间", "直到", "等到",
])  # fmt: skip
# ...unless those are part of a longer word (提到两点 = "mentioned two points").
TIME_BEFORE_NOT = both_scripts([
    "提到", "说到", "讲到", "谈到", "想到", "看到", "得到", "做到", "听到", "感到", "遇到",
    "收到", "受到", "意识到", "注意到", "达到", "找到", "拿到", "用到", "学到", "来到", "涉及到",
    "考虑到", "认识到", "早早", "大约有", "趁早", "提早", "最早", "及早", "稍早", "稍晚", "太早",
    "太晚", "很早", "很晚", "较早", "较晚", "更早", "更晚", "最晚",
])  # fmt: skip
# What follows 点 when it means o'clock (三点之前, 两点开始).
TIME_AFTER = both_scripts([
    "钟", "整", "前", "之前", "以前", "后", "之后", "以后", "左右", "多", "准时", "到", "至",
    "开始", "出发", "见", "起床", "上班", "下班", "开会", "集合", "结束", "关门", "回家",
    "上课", "下课", "发车", "起飞", "到达", "睡", "吃", "的时候", "的飞机", "的航班", "的火车",
    "的高铁", "的车", "的电影", "的会", "的课", "的票", "钟头", "了",
])  # fmt: skip
# The same for 一点, which is far more often "a little": only the unambiguous ones.
TIME_AFTER_ONE = both_scripts([
    "钟", "整", "之前", "以前", "之后", "以后", "左右", "准时", "开始", "出发", "起床", "上班",
    "下班", "开会", "集合", "的飞机", "的航班", "的火车", "的高铁", "到",
])  # fmt: skip
# After 点零五 without 分: time rather than 3.05 (八点零五下飞机).
TIME_AFTER_ZERO_MINUTES = both_scripts([
    "开始", "出发", "下飞机", "上飞机", "起飞", "到达", "的飞机", "的航班", "的火车", "的高铁",
    "的车", "见", "集合", "开会", "发车", "左右", "之前", "以前", "之后", "以后", "准时",
])  # fmt: skip

# A digit string of two digits is a code here (尾号八八 -> 88).
CODE_BEFORE = both_scripts([
    "尾号", "号码", "编号", "工号", "学号", "房间", "房号", "分机", "密码", "验证码", "车次",
    "航班", "门牌", "代码", "程式码", "邮编", "区号", "型号", "批号", "账号", "座位",
])  # fmt: skip

# 比 between two numbers is written as a colon in these surroundings (比分十七比十六 -> 17:16).
SCORE_BEFORE = both_scripts([
    "比分", "比赛", "以", "战胜", "击败", "打成", "获胜", "赢", "输", "战平", "领先", "落后",
    "比例", "比数", "场", "队", "对阵", "逆转", "定格在", "大比分", "总比分", "最终", "半场",
])  # fmt: skip
SCORE_AFTER = both_scripts([
    "获胜", "取胜", "战胜", "击败", "赢", "输", "落败", "告负", "拿下", "领先", "战平", "逆转",
    "力克", "险胜", "胜出", "大胜", "完胜", "惨败", "负于", "的比分", "的比例", "的成绩", "结束",
    "收官", "赢得", "的比数", "胜", "负", "落后", "打平", "平局", "的大比分",
])  # fmt: skip

# Operators in spoken arithmetic: numbers on both sides are figures, the word stays (123加456).
ARITH_OPS = both_scripts(["加上", "加", "减去", "减", "乘以", "乘", "除以", "等于"])

# Fixed words and idioms that contain numerals and must stay as they are. Single digits with an
# ordinary word after them (一些, 三心二意, 七上八下) are never converted anyway, so only words that
# a rule would otherwise touch are listed.
IDIOMS = both_scripts([
    "一五一十", "三七二十一", "九九八十一", "十有八九", "十之八九", "八九不离十", "十全十美", "十全大补", "十拿九稳", "十万火急", "十恶不赦",
    "十字", "十足", "十面埋伏", "十指连心", "十室九空", "十年如一日", "十年寒窗", "十年树木", "十年磨一剑", "十月怀胎", "一传十", "十传百",
    "以一当十", "一目十行", "闻一知十", "五十步笑百步", "三十而立", "四十不惑", "五十知天命", "三十六计", "三十六行", "三百六十行", "七十二变",
    "十八般武艺", "十八罗汉", "十八层地狱", "一百零八将", "二十四节气", "二十四孝", "十二生肖", "十二星座", "一千零一夜", "千千万万", "万万千千",
    "七七八八", "九九归一", "三三两两", "一点一滴", "一点一点", "一点半点", "两点一线", "三点一线", "十一长假", "十一黄金周", "十一假期",
    "十一期间", "国庆十一", "十一国庆", "十八大", "十九大", "二十大", "十七大", "十二分的", "十二万分", "一亩三分地", "九一八",
    "说一千道一万", "三头六臂", "第一时间", "第一手", "第一线", "第三方", "第三者", "第一人称", "第二人称", "第三人称", "第二天",
    "第一次世界大战", "第二次世界大战", "一百个放心", "十万个为什么", "一二一", "十二金钗", "十来", "初十", "二百五", "三八线", "五十肩",
    "十一五", "十二五", "十三五", "十四五", "十五五", "十三行", "十三太保", "十块八块", "十里", "十佳", "五月天", "四月天", "二月二",
    "八月十五", "十万八千里", "一分一秒", "一元复始", "三岁看老", "一岁一枯荣", "十年八年", "十天八天", "十天半个月", "十天半月", "十项全能",
    "十大", "四十大盗", "三十年河东", "半斤八两", "四两拨千斤", "千斤拨四两",
])  # fmt: skip
