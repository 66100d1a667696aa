// The single translation unit that compiles Boost.Asio and Boost.Beast (separate compilation:
// BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION are set on prescale_http
// for every user), so other files include only declarations.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
