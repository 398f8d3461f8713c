SELECT `col` FROM t # {{ hidden }}
WHERE a = {{ a }} AND b = "{{ b }}"