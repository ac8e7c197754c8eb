// loader API: see issue 5
