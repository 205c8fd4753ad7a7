# Agent unit tests; included from tests/CMakeLists.txt, which registers them
# with ctest. test_outbox reaches the outbox's internal header.
add_executable(test_outbox ${CMAKE_CURRENT_LIST_DIR}/test_outbox.c)
target_include_directories(test_outbox PRIVATE ${PROJECT_SOURCE_DIR}/agent)
target_link_libraries(test_outbox fleetagent)

# Lock order of the agent against paho's mutex, with a real mosquitto (starts
# its own on a free 127.0.0.1 port). Usage: test_agent_locking [SECONDS].
add_executable(test_agent_locking ${CMAKE_CURRENT_LIST_DIR}/test_agent_locking.c)
target_link_libraries(test_agent_locking fleetagent Threads::Threads)
