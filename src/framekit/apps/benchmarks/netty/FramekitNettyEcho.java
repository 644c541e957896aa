// The Netty contestant of framekit's server benchmark (framekit.apps.benchmarks.servers).
//
// An echo server for 4-byte big-endian length-prefixed frames, written the way Netty's own
// examples are: LengthFieldBasedFrameDecoder(max, 0, 4, 0, 4) strips the length,
// LengthFieldPrepender(4) puts it back, and the handler writes each frame it reads and flushes
// once per read (channelReadComplete), as Netty's EchoServerHandler does. One NIO event loop
// thread accepts and serves every connection. TCP_NODELAY is Netty's default on Linux.
//
// Usage: java -cp <this class>:<netty jars> FramekitNettyEcho
// Prints tcp://127.0.0.1:PORT on its first line once it listens; exits when stdin closes.

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler.Sharable;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.handler.codec.LengthFieldPrepender;
import java.net.InetSocketAddress;

public final class FramekitNettyEcho {
    private static final int MAX_FRAME = 1 << 20;

    @Sharable
    static final class Echo extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object frame) {
            ctx.write(frame);
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.flush();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    public static void main(String[] args) throws Exception {
        EventLoopGroup loop = new NioEventLoopGroup(1);
        final Echo echo = new Echo();
        try {
            ServerBootstrap bootstrap = new ServerBootstrap()
                .group(loop)
                .channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_BACKLOG, 1024)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(
                            new LengthFieldBasedFrameDecoder(MAX_FRAME, 0, 4, 0, 4),
                            new LengthFieldPrepender(4),
                            echo);
                    }
                });
            Channel server = bootstrap.bind("127.0.0.1", 0).sync().channel();
            int port = ((InetSocketAddress) server.localAddress()).getPort();
            System.out.println("tcp://127.0.0.1:" + port);
            System.out.flush();
            while (System.in.read() >= 0) {
                // serve until stdin closes
            }
        } finally {
            loop.shutdownGracefully();
        }
    }
}
