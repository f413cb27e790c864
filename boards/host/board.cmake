# The build machine itself (amd64 or whatever the host is): development, CI and the demo.
set(FERRY_CPU_FLAGS "")
