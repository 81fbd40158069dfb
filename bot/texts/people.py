"""Strings that put a person's name next to their role (handlers/people.py)."""

PERSON_WITH_ROLE = "{role}{name}"          # 技术部负责人李娜
DEPT_WITH_PERSON = "{dept} {name}"         # 已签字：技术部 李娜
LEAD_ONLY_NAMED = "只有协作组长{name}可以执行此操作。"
