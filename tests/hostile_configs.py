"""Hostile settings files shared by the command-line and the pipeline tests."""

# a YAML "billion laughs": nine levels of aliases, nine references each (9^9 values once expanded, small in memory
# while they stay shared), reaching a real key
BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *[
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ],
        "trial: {outcomes: *i}",
        "",
    ]
)
