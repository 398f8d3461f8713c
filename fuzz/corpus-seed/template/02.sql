SELECT '{{ not_a_param }}' AS literal, {{ x }} -- {{ comment }}
